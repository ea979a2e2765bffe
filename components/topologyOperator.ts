/**
 * `TopologyOperator`: the `topologyconfigs.harikube.info` CRD and the operator that merges TopologyConfig
 * resources into the topology Secret the middleware reads.
 *
 * RBAC is exactly what the operator does, no wildcards, shaped as Kubernetes operators ship it:
 * - ClusterRole: watch/update TopologyConfigs everywhere (+ status, + finalizers); create/patch Events, which
 *   are recorded in the namespace of the TopologyConfig they are about, hence cluster-wide.
 * - A Role in each of `secretNamespaces` (default: its own): the target and decrypt Secrets, and read access to
 *   the middlewares' apply reports (ConfigMaps). No Secret anywhere else; the operator is started with
 *   `--secret-namespaces` to match.
 * - A Role in its own namespace: the leader-election Lease.
 * - `/metrics` behind TokenReview + SubjectAccessReview (`--metrics-auth`, a ClusterRole for those two), read
 *   with the `harikube-metrics-reader` ClusterRole (bind it to Prometheus).
 * - `harikube-topologyconfig-admin`, `-editor`, `-viewer` ClusterRoles for application teams (bind them in a
 *   team's namespace with a RoleBinding); they aggregate into the built-in admin, edit and view roles.
 * The CRD is `topologyConfigCrd()`, the same object `harikube operator crd` prints, and is retained on delete
 * by default: deleting a CRD deletes every TopologyConfig, i.e. every application's routing.
 */
import * as pulumi from '@pulumi/pulumi';
import * as k8s from '@pulumi/kubernetes';
import { topologyConfigCrd, TOPOLOGYCONFIG_GROUP, TOPOLOGYCONFIG_PLURAL } from '../middleware/src/topology/crd.js';
import {
  httpProbe,
  inheritedDependsOn,
  resourceRequirements,
  restrictedContainerSecurityContext,
  restrictedPodSecurityContext,
  selectorLabels,
  standardLabels,
  type ResourceSettings,
} from './kube.js';

export interface TopologyOperatorArgs {
  /** Namespace the operator runs in; default `harikube`. */
  namespace?: string;
  /** Create the namespace; default true. Set false when another component owns it. */
  createNamespace?: boolean;
  /** HariKube image (the same image runs the middleware and the operator). */
  image: pulumi.Input<string>;
  /** Replicas; default 1. More are standbys: the operator elects a leader through a Lease. */
  replicas?: number;
  /** Requests/limits of the operator container. */
  resources?: ResourceSettings;
  /** Install the CRD; default true. Set false when it is managed elsewhere. */
  installCrd?: boolean;
  /** Keep the CRD (and so every TopologyConfig) when this component is deleted; default true. */
  retainCrdOnDelete?: boolean;
  /** Extra arguments after the defaults. */
  extraArgs?: string[];
  /** Image pull Secrets for private registries. */
  imagePullSecrets?: string[];
  /**
   * Namespaces whose Secrets the operator may use: target Secrets and decrypt Secrets (per-team keys live
   * in a team's own namespace when it is listed here). Default: the operator's namespace.
   */
  secretNamespaces?: string[];
}

export const OPERATOR_HEALTH_PORT = 8081;
export const OPERATOR_METRICS_PORT = 8080;
export const OPERATOR_NAME = 'harikube-topology-operator';

/** The ClusterRole rules: least privilege, every verb spelled out; no Secrets (see `operatorSecretRules`). */
export function operatorClusterRules(): k8s.types.input.rbac.v1.PolicyRule[] {
  return [
    { apiGroups: [TOPOLOGYCONFIG_GROUP], resources: [TOPOLOGYCONFIG_PLURAL], verbs: ['get', 'list', 'watch', 'update', 'patch'] },
    { apiGroups: [TOPOLOGYCONFIG_GROUP], resources: [`${TOPOLOGYCONFIG_PLURAL}/status`], verbs: ['get', 'update', 'patch'] },
    { apiGroups: [TOPOLOGYCONFIG_GROUP], resources: [`${TOPOLOGYCONFIG_PLURAL}/finalizers`], verbs: ['update'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
  ];
}

/** Rules of the Role in each Secret namespace: target and decrypt Secrets, and the middlewares' apply reports. */
export function operatorSecretRules(): k8s.types.input.rbac.v1.PolicyRule[] {
  return [
    { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch'] },
    { apiGroups: [''], resources: ['secrets/finalizers'], verbs: ['update'] },
    { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] },
  ];
}

/** What `--metrics-auth` needs: reviewing the tokens and permissions of /metrics callers. */
export function metricsAuthRules(): k8s.types.input.rbac.v1.PolicyRule[] {
  return [
    { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
    { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
  ];
}

/** The ClusterRoles for application teams and monitoring, by name suffix: rules and aggregation label. */
export function userClusterRoles(): Record<string, { rules: k8s.types.input.rbac.v1.PolicyRule[]; aggregateTo?: string }> {
  const tc = [TOPOLOGYCONFIG_GROUP];
  const status = { apiGroups: tc, resources: [`${TOPOLOGYCONFIG_PLURAL}/status`], verbs: ['get'] };
  return {
    'topologyconfig-admin': { rules: [{ apiGroups: tc, resources: [TOPOLOGYCONFIG_PLURAL], verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'] }, status], aggregateTo: 'admin' },
    'topologyconfig-editor': { rules: [{ apiGroups: tc, resources: [TOPOLOGYCONFIG_PLURAL], verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'] }, status], aggregateTo: 'edit' },
    'topologyconfig-viewer': { rules: [{ apiGroups: tc, resources: [TOPOLOGYCONFIG_PLURAL], verbs: ['get', 'list', 'watch'] }, status], aggregateTo: 'view' },
    'metrics-reader': { rules: [{ nonResourceURLs: ['/metrics'], verbs: ['get'] }] },
  };
}

/** The namespaced Role rules: the leader-election Lease only. */
export function operatorNamespaceRules(): k8s.types.input.rbac.v1.PolicyRule[] {
  return [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }];
}

/** The operator's pod template spec (pure; unit-tested). */
export function operatorPodSpec(args: {
  image: pulumi.Input<string>;
  serviceAccountName: pulumi.Input<string>;
  resources?: ResourceSettings;
  extraArgs?: string[];
  imagePullSecrets?: string[];
  secretNamespaces: string[];
}): k8s.types.input.core.v1.PodSpec {
  return {
    serviceAccountName: args.serviceAccountName,
    securityContext: restrictedPodSecurityContext(),
    terminationGracePeriodSeconds: 10,
    enableServiceLinks: false,
    ...(args.imagePullSecrets?.length ? { imagePullSecrets: args.imagePullSecrets.map((name) => ({ name })) } : {}),
    containers: [
      {
        name: 'operator',
        image: args.image,
        args: [
          'operator',
          '--leader-elect',
          `--health-probe-bind-address=:${OPERATOR_HEALTH_PORT}`,
          `--metrics-bind-address=:${OPERATOR_METRICS_PORT}`,
          '--log-format=json',
          `--secret-namespaces=${args.secretNamespaces.join(',')}`,
          '--metrics-auth',
          ...(args.extraArgs ?? []),
        ],
        env: [
          { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
          { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        ],
        ports: [
          { name: 'health', containerPort: OPERATOR_HEALTH_PORT },
          { name: 'metrics', containerPort: OPERATOR_METRICS_PORT },
        ],
        livenessProbe: httpProbe('/healthz', 'health', { initialDelaySeconds: 15, periodSeconds: 20 }),
        readinessProbe: httpProbe('/readyz', 'health', { initialDelaySeconds: 5, periodSeconds: 10 }),
        resources: resourceRequirements(args.resources ?? {}, { cpuRequest: '10m', memoryRequest: '64Mi', memoryLimit: '256Mi' }),
        securityContext: restrictedContainerSecurityContext(),
        // The only writable path; the root filesystem is read-only.
        volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
      },
    ],
    volumes: [{ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } }],
  };
}

export class TopologyOperator extends pulumi.ComponentResource {
  /** Namespace the operator runs in. */
  public readonly namespace: pulumi.Output<string>;
  /** The CRD, when installed: TopologyConfig resources should `dependsOn` it. */
  public readonly crd?: k8s.apiextensions.v1.CustomResourceDefinition;
  /** The operator Deployment. */
  public readonly deployment: k8s.apps.v1.Deployment;
  /** Resources TopologyConfigs must wait for (the CRD and the running operator). */
  public readonly ready: pulumi.Resource[];

  constructor(name: string, args: TopologyOperatorArgs, opts?: pulumi.ComponentResourceOptions) {
    super('harikube:index:TopologyOperator', name, {}, opts);
    const nsName = args.namespace ?? 'harikube';
    const labels = standardLabels(OPERATOR_NAME, name, 'topology-operator');
    const selector = selectorLabels(OPERATOR_NAME, name);

    const ns =
      args.createNamespace === false
        ? undefined
        : new k8s.core.v1.Namespace(`${name}-ns`, { metadata: { name: nsName, labels: { 'app.kubernetes.io/part-of': 'harikube' } } }, { parent: this });
    this.namespace = ns ? ns.metadata.name : pulumi.output(nsName);
    // Namespaced objects wait for the namespace: ours, or the one the caller's dependsOn brings.
    const inNs = [...(ns ? [ns] : []), ...inheritedDependsOn(opts)];

    if (args.installCrd !== false) {
      this.crd = new k8s.apiextensions.v1.CustomResourceDefinition(`${name}-crd`, topologyConfigCrd() as k8s.apiextensions.v1.CustomResourceDefinitionArgs, {
        parent: this,
        retainOnDelete: args.retainCrdOnDelete !== false,
      });
    }

    const sa = new k8s.core.v1.ServiceAccount(`${name}-sa`, { metadata: { name: OPERATOR_NAME, namespace: this.namespace, labels } }, { parent: this, dependsOn: inNs });
    const subjects = [{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: this.namespace }];
    const clusterRole = new k8s.rbac.v1.ClusterRole(`${name}-clusterrole`, { metadata: { name: OPERATOR_NAME, labels }, rules: operatorClusterRules() }, { parent: this });
    const clusterBinding = new k8s.rbac.v1.ClusterRoleBinding(
      `${name}-clusterrolebinding`,
      {
        metadata: { name: OPERATOR_NAME, labels },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: clusterRole.metadata.name },
        subjects,
      },
      { parent: this },
    );
    const authRole = new k8s.rbac.v1.ClusterRole(`${name}-metrics-auth`, { metadata: { name: `${OPERATOR_NAME}-metrics-auth`, labels }, rules: metricsAuthRules() }, { parent: this });
    const authBinding = new k8s.rbac.v1.ClusterRoleBinding(
      `${name}-metrics-auth`,
      { metadata: { name: `${OPERATOR_NAME}-metrics-auth`, labels }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: authRole.metadata.name }, subjects },
      { parent: this },
    );
    for (const [suffix, role] of Object.entries(userClusterRoles())) {
      new k8s.rbac.v1.ClusterRole(
        `${name}-${suffix}`,
        {
          metadata: {
            name: `harikube-${suffix}`,
            labels: { ...labels, ...(role.aggregateTo ? { [`rbac.authorization.k8s.io/aggregate-to-${role.aggregateTo}`]: 'true' } : {}) },
          },
          rules: role.rules,
        },
        { parent: this },
      );
    }
    const secretNamespaces = args.secretNamespaces?.length ? args.secretNamespaces : [nsName];
    const secretBindings = secretNamespaces.map((secretNs) => {
      const secretRole = new k8s.rbac.v1.Role(
        `${name}-secrets-${secretNs}`,
        { metadata: { name: `${OPERATOR_NAME}-secrets`, namespace: secretNs, labels }, rules: operatorSecretRules() },
        { parent: this, dependsOn: inNs },
      );
      return new k8s.rbac.v1.RoleBinding(
        `${name}-secrets-${secretNs}`,
        { metadata: { name: `${OPERATOR_NAME}-secrets`, namespace: secretNs, labels }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: secretRole.metadata.name }, subjects },
        { parent: this },
      );
    });
    const role = new k8s.rbac.v1.Role(
      `${name}-role`,
      { metadata: { name: `${OPERATOR_NAME}-leader-election`, namespace: this.namespace, labels }, rules: operatorNamespaceRules() },
      { parent: this, dependsOn: inNs },
    );
    const roleBinding = new k8s.rbac.v1.RoleBinding(
      `${name}-rolebinding`,
      {
        metadata: { name: `${OPERATOR_NAME}-leader-election`, namespace: this.namespace, labels },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name },
        subjects: [{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: this.namespace }],
      },
      { parent: this },
    );

    this.deployment = new k8s.apps.v1.Deployment(
      `${name}-deployment`,
      {
        metadata: { name: OPERATOR_NAME, namespace: this.namespace, labels },
        spec: {
          replicas: args.replicas ?? 1,
          selector: { matchLabels: selector },
          template: {
            metadata: { labels, annotations: { 'kubectl.kubernetes.io/default-container': 'operator' } },
            spec: operatorPodSpec({ image: args.image, serviceAccountName: sa.metadata.name, resources: args.resources, extraArgs: args.extraArgs, imagePullSecrets: args.imagePullSecrets, secretNamespaces }),
          },
        },
      },
      // Starting before its permissions and CRD exist only produces crash loops.
      { parent: this, dependsOn: [...inNs, clusterBinding, roleBinding, authBinding, ...secretBindings, ...(this.crd ? [this.crd] : [])] },
    );
    new k8s.core.v1.Service(
      `${name}-metrics`,
      {
        metadata: { name: `${OPERATOR_NAME}-metrics`, namespace: this.namespace, labels },
        spec: { selector, ports: [{ name: 'metrics', port: OPERATOR_METRICS_PORT, targetPort: 'metrics' }] },
      },
      { parent: this, dependsOn: inNs },
    );
    this.ready = [...(this.crd ? [this.crd] : []), this.deployment];
    this.registerOutputs({ namespace: this.namespace, deployment: this.deployment.metadata.name });
  }
}

/**
 * `Middleware`: one layer of HariKube, the etcd-compatible routing server.
 *
 * Objects: Deployment, Service (2379), metrics Service (8080), PodDisruptionBudget, NetworkPolicy, the data
 * volume (PVC, or emptyDir when ephemeral), optionally a cert-manager Certificate, and (with an
 * operator-managed topology) a Secret with the default endpoint.
 *
 * Layers compose: `endpoint` (`http(s)://harikube-<layer>.<ns>.svc:2379`) is a backend endpoint for a rule of
 * the layer above, whose pods are then admitted by this layer's NetworkPolicy (`parentLayers`).
 *
 * One writer: a layer allocates the global revision numbers of everything stored below it, so exactly one
 * process may serve writes. Rollouts (`middlewareRollout`):
 * - without `leaderElection` the Deployment uses `Recreate`: two pods would be two allocators against the same
 *   databases, and the data volume (ReadWriteOnce, SQLite) attaches to one node. The old pod stops, then the
 *   new one starts: the layer is absent meanwhile.
 * - with `leaderElection` (a PostgreSQL/MariaDB default backend, an emptyDir data volume) it uses RollingUpdate
 *   with maxSurge 1 and maxUnavailable `replicas - 1` (0 for one replica): standbys are never ready, so the
 *   one ready pod is the leader, and Kubernetes removes it only once a new pod is ready. The new pod starts
 *   as a standby; the leader hands the lease to it (`--leader-elect-template`, the pod-template-hash) and
 *   exits; the new pod becomes ready. More replicas require `leaderElection: true`.
 *
 * Secrets: endpoints reach the pod only through Secrets (`secretKeyRef`, mounted files), and the Deployment spec
 * itself never becomes a Pulumi secret.
 *
 * Routing changes do not touch the Deployment: the middleware hot-reloads the mounted `topology.yaml` when the
 * kubelet updates the Secret volume. The pod template carries only the keyed hash of what the middleware reads
 * when it starts (the default endpoint, rules' TLS files), so only a change of those rolls the pods. The
 * Secret is referred to by its plain name (ordered by `dependsOn`), so a Secret the provider replaces does not
 * drag the Deployment into a replacement (the engine replaces dependents only through their inputs).
 */
import * as pulumi from '@pulumi/pulumi';
import * as k8s from '@pulumi/kubernetes';
import * as random from '@pulumi/random';
import {
  dnsLabel,
  httpProbe,
  inheritedDependsOn,
  resourceRequirements,
  restrictedContainerSecurityContext,
  restrictedPodSecurityContext,
  selectorLabels,
  serviceHost,
  SKIP_AWAIT_ANNOTATION,
  standardLabels,
  waitForReady,
  type ResourceSettings,
} from './kube.js';
import { resolveImage, type ImageSource } from './middlewareImage.js';
import { DEFAULT_SQLITE_ENDPOINT, MIDDLEWARE_DATA_DIR, SERVER_TLS_DIR, TOPOLOGY_TLS_WORK_DIR } from './paths.js';
import { DEFAULT_ENDPOINT_KEY, type BackendTlsMount, type Topology } from './topology.js';
import { topologyHash } from '../middleware/src/topology/compile.js';
import { TOPOLOGY_DOCUMENT_KEY } from '../middleware/src/topology/secret-layout.js';
import { SERVE_ENV, serveFlag } from '../middleware/src/server/flags.js';

export const MIDDLEWARE_APP = 'harikube-middleware';
export const ETCD_PORT = 2379;
export const METRICS_PORT = 8080;
/** Pod template annotation: keyed hash of what the middleware reads only at start (`Topology.restartHash`, or the default endpoint). */
export const RESTART_HASH_ANNOTATION = 'harikube.info/restart-hash';

/** Where clients of the root layer (the Kubernetes API server) come from. */
export interface ApiServerPeers {
  /** CIDRs of API server hosts (API servers outside the cluster, or on host network). */
  cidrs?: string[];
  /** Labels of API server pods (hosted control planes, e.g. `component: kube-apiserver`). */
  podSelector?: Record<string, string>;
  /** Labels of the namespaces of those pods; without it, `podSelector` matches pods of the layer's own namespace only. */
  namespaceSelector?: Record<string, string>;
}

/** Serving TLS: a cert-manager Certificate issued here, or an existing Secret. */
export type MiddlewareTls =
  | {
      /** Issuer of the serving certificate. */
      issuerRef: { name: pulumi.Input<string>; kind?: 'Issuer' | 'ClusterIssuer'; group?: string };
      /** Extra DNS names besides the Service's names. */
      dnsNames?: string[];
      /** Require client certificates signed by the CA in the Secret's `ca.crt`; default true. */
      requireClientCertificates?: boolean;
    }
  | {
      /** Existing Secret with `tls.crt`, `tls.key` and (to require client certificates) `ca.crt`. */
      secretName: pulumi.Input<string>;
      /** Require client certificates signed by `ca.crt`; default true. */
      requireClientCertificates?: boolean;
    };

/** Where the layer keeps its files (the SQLite default backend). */
export type MiddlewareStorage =
  | {
      /** Volume size; default `5Gi`. */
      size?: string;
      /** StorageClass; the cluster default when omitted. */
      storageClass?: string;
      /** Keep the volume when the layer is deleted; default true (it holds the meta store). */
      retainOnDelete?: boolean;
    }
  | {
      /** An emptyDir: data is lost with the pod. Only for development, or when no SQLite backend is used. */
      ephemeral: true;
      /** emptyDir size limit; default `1Gi`. */
      sizeLimit?: string;
    };

export interface MiddlewareArgs {
  /** Namespace of the layer (must exist). */
  namespace: pulumi.Input<string>;
  /** Layer name used in object names (`harikube-<layer>`); defaults to the component name. */
  layerName?: string;
  /** The HariKube image: a reference (deployed as given; use a digest), or `{ build }` to build and deploy by digest. */
  image: ImageSource;
  /** Replicas; default 1. More than 1 requires `leaderElection`. */
  replicas?: number;
  /**
   * Run standbys behind leader election (passes `--leader-elect`); required for `replicas > 1`. Needs a network
   * default backend (PostgreSQL/MariaDB) and no SQLite on the data volume, which is then an emptyDir: pods of
   * a rolling update run at once, and a ReadWriteOnce volume attaches to one node. Rolls without a gap
   * beyond one lease hand-over.
   */
  leaderElection?: boolean;
  /** Pulumi-compiled topology (mounted files; rolls the pods when it changes). Exclusive with `topologySecretRef`. */
  topology?: Topology;
  /**
   * `namespace/name` of an operator-managed topology Secret (`TOPOLOGY_CONFIG=secret://...`, hot-reloaded by the
   * middleware from its default backend). Exclusive with `topology`.
   */
  topologySecretRef?: string;
  /** Secrets to mount for rules' backend TLS when `topologySecretRef` is used (a compiled Topology brings its own). */
  backendTlsMounts?: BackendTlsMount[];
  /** Default backend when `topologySecretRef` is used (with `topology`, it belongs to the Topology). */
  defaultEndpoint?: pulumi.Input<string>;
  /** Data volume; default a 5Gi PVC (an emptyDir with `leaderElection`, which cannot use a PVC). */
  storage?: MiddlewareStorage;
  /** Serving TLS; plain HTTP/2 when omitted. */
  tls?: MiddlewareTls;
  /** Who may call the root layer: the Kubernetes API server. */
  apiServer?: ApiServerPeers;
  /** Layers whose rules point at this one (their pods are admitted on 2379). */
  parentLayers?: Array<{ name: string; namespace?: string }>;
  /** More peers admitted on 2379 (e.g. backup jobs). */
  extraClientPeers?: k8s.types.input.networking.v1.NetworkPolicyPeer[];
  /** Peers admitted on the metrics port 8080; default every namespace (metrics hold no data). */
  metricsFrom?: k8s.types.input.networking.v1.NetworkPolicyPeer[];
  /** Requests/limits. */
  resources?: ResourceSettings;
  /** Extra `serve` flags after the defaults. */
  extraArgs?: string[];
  /** Image pull Secrets for private registries. */
  imagePullSecrets?: string[];
  /**
   * PodDisruptionBudget; default `maxUnavailable: replicas`. Only the writer (the leader) is ever ready, so any
   * smaller budget would forbid evicting it and block node drains forever; evicting it costs what a stop
   * costs (a standby takes the released lease at once).
   */
  disruptionBudget?: { maxUnavailable?: number | string; minAvailable?: number | string };
  /** Priority class (the API server's storage should not be the first thing evicted). */
  priorityClassName?: string;
}

/** Validated, normalized settings (pure; throws on contradictions). */
export interface MiddlewarePlan {
  layer: string;
  objectName: string;
  replicas: number;
  leaderElection: boolean;
  tls: boolean;
  requireClientCertificates: boolean;
  source: 'compiled' | 'operator';
  /** A layer with a parent layer: the layer above compacts it, so it never compacts by itself. */
  lowerLayer: boolean;
  /** The data volume is an emptyDir (always with leader election). */
  ephemeral: boolean;
}

export function planMiddleware(name: string, args: MiddlewareArgs): MiddlewarePlan {
  const layer = args.layerName ?? name;
  const objectName = dnsLabel('harikube', layer);
  const replicas = args.replicas ?? 1;
  const where = `Middleware "${layer}"`;
  if (!Number.isInteger(replicas) || replicas < 1) throw new Error(`${where}: replicas must be a whole number >= 1`);
  if (replicas > 1 && !args.leaderElection) {
    throw new Error(`${where}: replicas ${replicas} needs leaderElection: true (only one process may allocate revisions)`);
  }
  if (args.leaderElection && args.storage && !('ephemeral' in args.storage)) {
    throw new Error(
      `${where}: leaderElection runs two pods at once (standbys, and the new pod of a rolling update), and a ReadWriteOnce volume attaches to one node; ` +
        'omit storage (an emptyDir: a leader-elected layer keeps nothing on it, its default backend is PostgreSQL or MariaDB) or set leaderElection: false',
    );
  }
  if (!!args.topology === !!args.topologySecretRef) {
    throw new Error(`${where}: give exactly one of topology (compiled by Pulumi) or topologySecretRef (operator-managed)`);
  }
  if (args.topology && args.backendTlsMounts?.length) {
    throw new Error(`${where}: with a compiled topology, declare backend TLS Secrets on its rules (tlsSecretName)`);
  }
  if (args.topology && args.defaultEndpoint !== undefined) {
    throw new Error(`${where}: with a compiled topology, set the default endpoint on the Topology (defaultEndpoint) so it is part of its hash`);
  }
  if (args.topologySecretRef && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/.test(args.topologySecretRef)) {
    throw new Error(`${where}: topologySecretRef "${args.topologySecretRef}" is not namespace/name`);
  }
  return {
    layer,
    objectName,
    replicas,
    leaderElection: !!args.leaderElection,
    tls: !!args.tls,
    requireClientCertificates: args.tls?.requireClientCertificates !== false,
    source: args.topology ? 'compiled' : 'operator',
    lowerLayer: !!args.parentLayers?.length,
    ephemeral: !!args.leaderElection || (!!args.storage && 'ephemeral' in args.storage),
  };
}

/**
 * How the Deployment rolls (pure): RollingUpdate gated on readiness where leader election lets two pods run
 * at once, Recreate where a single writer without a lease forces it. See the module comment.
 */
export function middlewareRollout(plan: MiddlewarePlan): k8s.types.input.apps.v1.DeploymentStrategy {
  if (!plan.leaderElection) return { type: 'Recreate' };
  return { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: plan.replicas - 1 } };
}

/** The `serve` arguments (pure). The default endpoint comes from $HARIKUBE_ENDPOINT (a Secret), never the command line. */
export function middlewareArgs(plan: MiddlewarePlan, extra: string[] = []): string[] {
  return [
    'serve',
    serveFlag('listen-address', `0.0.0.0:${ETCD_PORT}`),
    serveFlag('metrics-bind-address', `:${METRICS_PORT}`),
    serveFlag('log-format', 'json'),
    ...(plan.tls
      ? [
          serveFlag('server-cert-file', `${SERVER_TLS_DIR}/tls.crt`),
          serveFlag('server-key-file', `${SERVER_TLS_DIR}/tls.key`),
          ...(plan.requireClientCertificates ? [serveFlag('server-ca-file', `${SERVER_TLS_DIR}/ca.crt`)] : []),
        ]
      : []),
    ...(plan.leaderElection ? [serveFlag('leader-elect')] : []),
    // README "Guarantees across databases and layers": compaction at the top compacts the layers below.
    ...(plan.lowerLayer ? [serveFlag('compact-interval', 0)] : []),
    ...extra,
  ];
}

/** NetworkPolicy: 2379 only from the API server, parent layers and extra peers; 8080 from `metricsFrom`. */
export function middlewareNetworkPolicySpec(
  selector: Record<string, string>,
  args: Pick<MiddlewareArgs, 'apiServer' | 'parentLayers' | 'extraClientPeers' | 'metricsFrom'>,
  ownNamespace: string,
): k8s.types.input.networking.v1.NetworkPolicySpec {
  const peers: k8s.types.input.networking.v1.NetworkPolicyPeer[] = [];
  for (const cidr of args.apiServer?.cidrs ?? []) peers.push({ ipBlock: { cidr } });
  if (args.apiServer?.podSelector || args.apiServer?.namespaceSelector) {
    peers.push({
      ...(args.apiServer.podSelector ? { podSelector: { matchLabels: args.apiServer.podSelector } } : {}),
      ...(args.apiServer.namespaceSelector ? { namespaceSelector: { matchLabels: args.apiServer.namespaceSelector } } : {}),
    });
  }
  for (const parent of args.parentLayers ?? []) {
    peers.push({
      podSelector: { matchLabels: selectorLabels(MIDDLEWARE_APP, parent.name) },
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': parent.namespace ?? ownNamespace } },
    });
  }
  peers.push(...(args.extraClientPeers ?? []));
  const ingress: k8s.types.input.networking.v1.NetworkPolicyIngressRule[] = [];
  // An ingress rule with no peers would admit everyone; with no clients configured, 2379 stays closed.
  if (peers.length) ingress.push({ from: peers, ports: [{ protocol: 'TCP', port: ETCD_PORT }] });
  ingress.push({ from: args.metricsFrom ?? [{ namespaceSelector: {} }], ports: [{ protocol: 'TCP', port: METRICS_PORT }] });
  return { podSelector: { matchLabels: selector }, policyTypes: ['Ingress'], ingress };
}

export class Middleware extends pulumi.ComponentResource {
  /** `http(s)://harikube-<layer>.<ns>.svc:2379`: the backend endpoint of this layer for the layer above. */
  public readonly endpoint: pulumi.Output<string>;
  /** The etcd-API Service. */
  public readonly service: k8s.core.v1.Service;
  /** The Deployment. */
  public readonly deployment: k8s.apps.v1.Deployment;
  /** The image reference deployed. */
  public readonly image: pulumi.Output<string>;
  /** Name of the Secret holding the serving certificate, when TLS is on. */
  public readonly tlsSecretName?: pulumi.Output<string>;
  /** The normalized settings. */
  public readonly plan: MiddlewarePlan;

  constructor(name: string, args: MiddlewareArgs, opts?: pulumi.ComponentResourceOptions) {
    super('harikube:index:Middleware', name, {}, opts);
    this.plan = planMiddleware(name, args);
    const layer: LayerObjects = {
      plan: this.plan,
      labels: standardLabels(MIDDLEWARE_APP, this.plan.layer, 'middleware', { 'harikube.info/layer': this.plan.layer }),
      selector: selectorLabels(MIDDLEWARE_APP, this.plan.layer),
    };
    this.image = resolveImage(`${name}-image`, args.image, this);
    const startup = createDefaultEndpoint(name, args, layer, this);
    const dataVolume = createDataVolume(name, args, layer, this);
    this.service = createServices(name, args, layer, this);
    this.endpoint = pulumi.interpolate`${this.plan.tls ? 'https' : 'http'}://${this.service.metadata.name}.${args.namespace}.svc:${ETCD_PORT}`;
    const tls = createServingTls(name, args, layer, this);
    if (tls.secretName !== undefined) this.tlsSecretName = pulumi.output(tls.secretName);
    this.deployment = createDeployment(name, args, layer, { image: this.image, startup, dataVolume, tls }, this, [...tls.dependsOn, ...startup.dependsOn, ...inheritedDependsOn(opts)]);
    createDisruptionBudget(name, args, layer, this);
    createNetworkPolicy(name, args, layer, this);
    this.registerOutputs({ endpoint: this.endpoint, image: this.image, service: this.service.metadata.name });
  }
}

/** What every object of a layer shares. */
interface LayerObjects {
  plan: MiddlewarePlan;
  /** Labels of every object (and of the pods). */
  labels: Record<string, string>;
  /** The pods' selector. */
  selector: Record<string, string>;
}

/** What the pod reads when it starts: the Secret with the default endpoint, and the keyed hash that rolls the pods when it changes. */
interface StartupInputs {
  /** Plain name of the Secret holding `DEFAULT_ENDPOINT_KEY` (ordered by `dependsOn`, see the module comment). */
  secretName: string;
  /** Keyed hash of what the middleware reads only at start; the pod template's `RESTART_HASH_ANNOTATION`. */
  restartHash: pulumi.Input<string>;
  /** The Secrets the Deployment waits for. */
  dependsOn: pulumi.Resource[];
}

/**
 * The default endpoint: the compiled Topology's Secret, or (operator-managed topology) a Secret of the
 * layer's own with a keyed hash of it.
 */
function createDefaultEndpoint(name: string, args: MiddlewareArgs, layer: LayerObjects, parent: pulumi.Resource): StartupInputs {
  if (args.topology) {
    return { secretName: args.topology.secretObjectName, restartHash: args.topology.restartHash, dependsOn: [args.topology.secret] };
  }
  const defaultEndpoint = pulumi.output(args.defaultEndpoint ?? DEFAULT_SQLITE_ENDPOINT);
  const secretName = `${layer.plan.objectName}-default-endpoint`;
  const secret = new k8s.core.v1.Secret(
    `${name}-default-endpoint`,
    {
      metadata: { name: secretName, namespace: args.namespace, labels: layer.labels },
      type: 'Opaque',
      stringData: { [DEFAULT_ENDPOINT_KEY]: pulumi.secret(defaultEndpoint) },
    },
    { parent },
  );
  // keyed, like Topology's: the annotation must not be an offline oracle for the password in the endpoint
  const key = new random.RandomPassword(`${name}-restart-key`, { length: 48, special: false }, { parent });
  const restartHash = pulumi.unsecret(pulumi.all([key.result, defaultEndpoint]).apply(([k, e]) => topologyHash(k, { [DEFAULT_ENDPOINT_KEY]: e })));
  return { secretName, restartHash, dependsOn: [secret] };
}

/** The data volume: an emptyDir (leader election, or `storage.ephemeral`), or a PersistentVolumeClaim. */
function createDataVolume(name: string, args: MiddlewareArgs, layer: LayerObjects, parent: pulumi.Resource): k8s.types.input.core.v1.Volume {
  const storage: MiddlewareStorage = args.storage ?? (layer.plan.ephemeral ? { ephemeral: true } : {});
  if ('ephemeral' in storage) return { name: 'data', emptyDir: { sizeLimit: storage.sizeLimit ?? '1Gi' } };
  const pvc = new k8s.core.v1.PersistentVolumeClaim(
    `${name}-data`,
    {
      // skipAwait: with a WaitForFirstConsumer StorageClass the claim binds only once the pod exists,
      // and the pod (Deployment) is created after the claim; waiting here would deadlock.
      metadata: { name: `${layer.plan.objectName}-data`, namespace: args.namespace, labels: layer.labels, annotations: { [SKIP_AWAIT_ANNOTATION]: 'true' } },
      spec: {
        accessModes: ['ReadWriteOnce'],
        ...(storage.storageClass ? { storageClassName: storage.storageClass } : {}),
        resources: { requests: { storage: storage.size ?? '5Gi' } },
      },
    },
    { parent, retainOnDelete: storage.retainOnDelete !== false },
  );
  return { name: 'data', persistentVolumeClaim: { claimName: pvc.metadata.name } };
}

/** The etcd-API Service (returned) and the metrics Service; explicit names: they are part of endpoints other layers store. */
function createServices(name: string, args: MiddlewareArgs, layer: LayerObjects, parent: pulumi.Resource): k8s.core.v1.Service {
  const { plan, labels, selector } = layer;
  const service = new k8s.core.v1.Service(
    `${name}-service`,
    {
      metadata: { name: plan.objectName, namespace: args.namespace, labels },
      spec: { selector, ports: [{ name: 'etcd', port: ETCD_PORT, targetPort: 'etcd', protocol: 'TCP', ...(plan.tls ? {} : { appProtocol: 'kubernetes.io/h2c' }) }] },
    },
    { parent },
  );
  new k8s.core.v1.Service(
    `${name}-metrics`,
    {
      metadata: { name: `${plan.objectName}-metrics`, namespace: args.namespace, labels },
      spec: { selector, ports: [{ name: 'metrics', port: METRICS_PORT, targetPort: 'metrics', protocol: 'TCP' }] },
    },
    { parent },
  );
  return service;
}

/** Serving TLS as the pod mounts it. */
interface ServingTls {
  /** The Secret with `tls.crt`, `tls.key` (and `ca.crt`); none without TLS. */
  secretName?: pulumi.Input<string>;
  /** What the Deployment waits for (the Certificate, until cert-manager has issued it). */
  dependsOn: pulumi.Resource[];
}

/** Serving TLS: a cert-manager Certificate for the Service's names, or the Secret given. */
function createServingTls(name: string, args: MiddlewareArgs, layer: LayerObjects, parent: pulumi.Resource): ServingTls {
  if (!args.tls) return { dependsOn: [] };
  if (!('issuerRef' in args.tls)) return { secretName: args.tls.secretName, dependsOn: [] };
  const { objectName } = layer.plan;
  const { issuerRef, dnsNames = [] } = args.tls;
  const certificate = new k8s.apiextensions.CustomResource(
    `${name}-certificate`,
    {
      apiVersion: 'cert-manager.io/v1',
      kind: 'Certificate',
      metadata: { name: `${objectName}-server`, namespace: args.namespace, labels: layer.labels, annotations: waitForReady() },
      spec: pulumi.output(args.namespace).apply((n) => ({
        secretName: `${objectName}-server-tls`,
        issuerRef: { name: issuerRef.name, kind: issuerRef.kind ?? 'Issuer', group: issuerRef.group ?? 'cert-manager.io' },
        commonName: serviceHost(objectName, n),
        dnsNames: [objectName, `${objectName}.${n}`, serviceHost(objectName, n), `${serviceHost(objectName, n)}.cluster.local`, ...dnsNames],
        usages: ['server auth', 'digital signature', 'key encipherment'],
        privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
        duration: '2160h',
        renewBefore: '360h',
      })),
    },
    { parent },
  );
  return { secretName: `${objectName}-server-tls`, dependsOn: [certificate] };
}

/** What the pod is made of besides the arguments: its image and what the other helpers created. */
interface PodInputs {
  image: pulumi.Input<string>;
  startup: StartupInputs;
  dataVolume: k8s.types.input.core.v1.Volume;
  tls: ServingTls;
}

/** The container's environment: endpoints only through Secrets, the topology source, the downward API. */
function middlewareEnv(args: MiddlewareArgs, plan: MiddlewarePlan, defaultEndpointSecret: string): k8s.types.input.core.v1.EnvVar[] {
  return [
    { name: SERVE_ENV.endpoint, valueFrom: { secretKeyRef: { name: defaultEndpointSecret, key: DEFAULT_ENDPOINT_KEY } } },
    args.topology
      ? { name: SERVE_ENV.topologyConfig, value: `file://${args.topology.mountPath}/${TOPOLOGY_DOCUMENT_KEY}` }
      : { name: SERVE_ENV.topologyConfig, value: `secret://${args.topologySecretRef}` },
    { name: SERVE_ENV.topologyTlsDir, value: TOPOLOGY_TLS_WORK_DIR },
    { name: SERVE_ENV.podName, valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    // leader hand-over in a rolling update: the new pod is the one of another template
    ...(plan.leaderElection ? [{ name: SERVE_ENV.podTemplateHash, valueFrom: { fieldRef: { fieldPath: "metadata.labels['pod-template-hash']" } } }] : []),
  ];
}

/** The pod's volumes and the container's mounts: data, scratch, the topology and every TLS Secret. */
function middlewareVolumes(args: MiddlewareArgs, pod: PodInputs): { volumes: k8s.types.input.core.v1.Volume[]; mounts: k8s.types.input.core.v1.VolumeMount[] } {
  const volumes: k8s.types.input.core.v1.Volume[] = [
    pod.dataVolume,
    { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
    { name: 'topology-tls', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
  ];
  const mounts: k8s.types.input.core.v1.VolumeMount[] = [
    { name: 'data', mountPath: MIDDLEWARE_DATA_DIR },
    { name: 'tmp', mountPath: '/tmp' },
    { name: 'topology-tls', mountPath: TOPOLOGY_TLS_WORK_DIR },
  ];
  if (args.topology) {
    volumes.push({ name: 'topology', secret: { secretName: args.topology.secretObjectName, defaultMode: 0o440 } });
    mounts.push({ name: 'topology', mountPath: args.topology.mountPath, readOnly: true });
  }
  [...(args.topology?.tlsMounts ?? []), ...(args.backendTlsMounts ?? [])].forEach((m, i) => {
    volumes.push({ name: `backend-tls-${i}`, secret: { secretName: m.secretName, defaultMode: 0o440 } });
    mounts.push({ name: `backend-tls-${i}`, mountPath: m.mountPath, readOnly: true });
  });
  if (pod.tls.secretName !== undefined) {
    volumes.push({ name: 'server-tls', secret: { secretName: pod.tls.secretName, defaultMode: 0o440 } });
    mounts.push({ name: 'server-tls', mountPath: SERVER_TLS_DIR, readOnly: true });
  }
  return { volumes, mounts };
}

/** The Deployment: one container running `harikube serve`, rolled as `middlewareRollout` says. */
function createDeployment(
  name: string,
  args: MiddlewareArgs,
  layer: LayerObjects,
  pod: PodInputs,
  parent: pulumi.Resource,
  dependsOn: pulumi.Input<pulumi.Resource>[],
): k8s.apps.v1.Deployment {
  const { plan, labels, selector } = layer;
  const { volumes, mounts } = middlewareVolumes(args, pod);
  const podAnnotations: Record<string, pulumi.Input<string>> = { 'kubectl.kubernetes.io/default-container': 'middleware' };
  podAnnotations[RESTART_HASH_ANNOTATION] = pod.startup.restartHash;
  return new k8s.apps.v1.Deployment(
    `${name}-deployment`,
    {
      metadata: { name: plan.objectName, namespace: args.namespace, labels },
      spec: {
        replicas: plan.replicas,
        selector: { matchLabels: selector },
        strategy: middlewareRollout(plan),
        template: {
          metadata: { labels, annotations: podAnnotations },
          spec: {
            securityContext: restrictedPodSecurityContext(),
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            terminationGracePeriodSeconds: 30,
            ...(args.priorityClassName ? { priorityClassName: args.priorityClassName } : {}),
            ...(args.imagePullSecrets?.length ? { imagePullSecrets: args.imagePullSecrets.map((n) => ({ name: n })) } : {}),
            containers: [
              {
                name: 'middleware',
                image: pod.image,
                args: middlewareArgs(plan, args.extraArgs),
                env: middlewareEnv(args, plan, pod.startup.secretName),
                ports: [
                  { name: 'etcd', containerPort: ETCD_PORT, protocol: 'TCP' },
                  { name: 'metrics', containerPort: METRICS_PORT, protocol: 'TCP' },
                ],
                // Startup may include schema migrations of every backend: give it time before liveness counts.
                startupProbe: httpProbe('/healthz', 'metrics', { initialDelaySeconds: 0, periodSeconds: 5, failureThreshold: 60 }),
                livenessProbe: httpProbe('/healthz', 'metrics', { initialDelaySeconds: 0, periodSeconds: 10, failureThreshold: 3 }),
                readinessProbe: httpProbe('/readyz', 'metrics', { initialDelaySeconds: 0, periodSeconds: 5, failureThreshold: 2 }),
                resources: resourceRequirements(args.resources ?? {}, { cpuRequest: '250m', memoryRequest: '256Mi', memoryLimit: '1Gi' }),
                securityContext: restrictedContainerSecurityContext(),
                volumeMounts: mounts,
              },
            ],
            volumes,
          },
        },
      },
    },
    { parent, dependsOn },
  );
}

/** The PodDisruptionBudget: by default `maxUnavailable: replicas` (see `MiddlewareArgs.disruptionBudget`). */
function createDisruptionBudget(name: string, args: MiddlewareArgs, layer: LayerObjects, parent: pulumi.Resource): void {
  new k8s.policy.v1.PodDisruptionBudget(
    `${name}-pdb`,
    {
      metadata: { name: layer.plan.objectName, namespace: args.namespace, labels: layer.labels },
      spec: {
        ...(args.disruptionBudget?.minAvailable !== undefined
          ? { minAvailable: args.disruptionBudget.minAvailable }
          : { maxUnavailable: args.disruptionBudget?.maxUnavailable ?? layer.plan.replicas }),
        // A crash-looping pod must not block node drains.
        unhealthyPodEvictionPolicy: 'AlwaysAllow',
        selector: { matchLabels: layer.selector },
      },
    },
    { parent },
  );
}

/** The NetworkPolicy of `middlewareNetworkPolicySpec`; warns when it admits no client at all. */
function createNetworkPolicy(name: string, args: MiddlewareArgs, layer: LayerObjects, parent: pulumi.Resource): void {
  new k8s.networking.v1.NetworkPolicy(
    `${name}-netpol`,
    {
      metadata: { name: layer.plan.objectName, namespace: args.namespace, labels: layer.labels },
      spec: pulumi.output(args.namespace).apply((n) => middlewareNetworkPolicySpec(layer.selector, args, n)),
    },
    { parent },
  );
  if (!args.apiServer && !args.parentLayers?.length && !args.extraClientPeers?.length) {
    pulumi.log.warn(`Middleware "${layer.plan.layer}": no apiServer, parentLayers or extraClientPeers; its NetworkPolicy admits no client on ${ETCD_PORT}`, parent);
  }
}

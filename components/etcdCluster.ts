/**
 * `EtcdCluster`: a static etcd cluster as a StatefulSet (no operator needed), for topology rules that store
 * keys in a real etcd.
 *
 * Members find each other through a headless Service (`publishNotReadyAddresses`, so bootstrap works before
 * any member is ready); clients use a normal Service. Auto-compaction stays off: the middleware owns
 * compaction (one global revision across backends). A NetworkPolicy admits clients only from the given peers
 * (the middleware pods) and peer traffic only between members.
 */
import * as pulumi from '@pulumi/pulumi';
import * as k8s from '@pulumi/kubernetes';
import { dnsLabel, httpProbe, resourceRequirements, restrictedContainerSecurityContext, restrictedPodSecurityContext, selectorLabels, standardLabels, type ResourceSettings } from './kube.js';

export interface EtcdClusterArgs {
  /** Namespace of the cluster (must exist). */
  namespace: pulumi.Input<string>;
  /** Name of the StatefulSet and client Service; defaults to the component name. */
  clusterName?: string;
  /** Members; default 3 (odd numbers only: quorum). */
  replicas?: number;
  /** etcd image; default `registry.k8s.io/etcd:3.5.21-0`. */
  image?: string;
  /** Volume size per member; default `8Gi`. */
  storageSize?: string;
  /** StorageClass of the volumes; the cluster default when omitted. */
  storageClass?: string;
  /** Backend quota in bytes (`--quota-backend-bytes`); default 8 GiB. */
  quotaBackendBytes?: number;
  /** Requests/limits of each member. */
  resources?: ResourceSettings;
  /** Pods allowed to reach the client port (2379); default: pods of the `harikube` platform in this namespace. */
  allowedClients?: k8s.types.input.networking.v1.NetworkPolicyPeer[];
}

export const ETCD_IMAGE = 'registry.k8s.io/etcd:3.5.21-0';
export const ETCD_CLIENT_PORT = 2379;
const PEER_PORT = 2380;
const METRICS_PORT = 2381;
/** UID etcd runs as; the image needs no particular user, data is group-owned via fsGroup. */
const ETCD_UID = 65532;

/** `--initial-cluster` for `replicas` members behind the headless Service. */
export function initialCluster(name: string, peerService: string, namespace: string, replicas: number): string {
  return Array.from({ length: replicas }, (_, i) => `${name}-${i}=http://${name}-${i}.${peerService}.${namespace}.svc:${PEER_PORT}`).join(',');
}

/** The StatefulSet spec (pure; unit-tested). */
export function etcdStatefulSetSpec(name: string, namespace: string, args: EtcdClusterArgs): k8s.types.input.apps.v1.StatefulSetSpec {
  const replicas = args.replicas ?? 3;
  if (replicas < 1 || replicas % 2 === 0) throw new Error(`EtcdCluster ${name}: replicas must be odd (quorum), got ${replicas}`);
  const peer = `${name}-peer`;
  const selector = selectorLabels('etcd', name);
  const self = `$(POD_NAME).${peer}.${namespace}.svc`;
  return {
    serviceName: peer,
    replicas,
    // Every member must start for the cluster to bootstrap; ordered start would deadlock on quorum.
    podManagementPolicy: 'Parallel',
    selector: { matchLabels: selector },
    template: {
      metadata: { labels: standardLabels('etcd', name, 'database') },
      spec: {
        securityContext: restrictedPodSecurityContext(ETCD_UID),
        enableServiceLinks: false,
        automountServiceAccountToken: false,
        containers: [
          {
            name: 'etcd',
            image: args.image ?? ETCD_IMAGE,
            command: ['etcd'],
            args: [
              '--name=$(POD_NAME)',
              '--data-dir=/var/lib/etcd/data',
              `--listen-client-urls=http://0.0.0.0:${ETCD_CLIENT_PORT}`,
              `--advertise-client-urls=http://${self}:${ETCD_CLIENT_PORT}`,
              `--listen-peer-urls=http://0.0.0.0:${PEER_PORT}`,
              `--initial-advertise-peer-urls=http://${self}:${PEER_PORT}`,
              `--listen-metrics-urls=http://0.0.0.0:${METRICS_PORT}`,
              `--initial-cluster=${initialCluster(name, peer, namespace, replicas)}`,
              `--initial-cluster-token=${name}`,
              '--initial-cluster-state=new',
              `--quota-backend-bytes=${args.quotaBackendBytes ?? 8 * 1024 ** 3}`,
            ],
            env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
            ports: [
              { name: 'client', containerPort: ETCD_CLIENT_PORT },
              { name: 'peer', containerPort: PEER_PORT },
              { name: 'metrics', containerPort: METRICS_PORT },
            ],
            // Liveness must not depend on a leader: losing quorum must not restart every member.
            livenessProbe: httpProbe('/health?serializable=true&exclude=NOSPACE', METRICS_PORT, { initialDelaySeconds: 10, periodSeconds: 10, failureThreshold: 8, timeoutSeconds: 15 }),
            readinessProbe: httpProbe('/health', METRICS_PORT, { periodSeconds: 5, timeoutSeconds: 5 }),
            resources: resourceRequirements(args.resources ?? {}, { cpuRequest: '100m', memoryRequest: '256Mi', memoryLimit: '2Gi' }),
            securityContext: restrictedContainerSecurityContext(),
            volumeMounts: [{ name: 'data', mountPath: '/var/lib/etcd' }],
          },
        ],
      },
    },
    volumeClaimTemplates: [
      {
        metadata: { name: 'data' },
        spec: {
          accessModes: ['ReadWriteOnce'],
          ...(args.storageClass ? { storageClassName: args.storageClass } : {}),
          resources: { requests: { storage: args.storageSize ?? '8Gi' } },
        },
      },
    ],
  };
}

export class EtcdCluster extends pulumi.ComponentResource {
  /** `http://<name>.<ns>.svc:2379` (Pulumi secret for uniformity with the other databases, though it holds no credentials). */
  public readonly endpoint: pulumi.Output<string>;
  /** The members. */
  public readonly statefulSet: k8s.apps.v1.StatefulSet;
  /** The client Service. */
  public readonly service: k8s.core.v1.Service;

  constructor(name: string, args: EtcdClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super('harikube:index:EtcdCluster', name, {}, opts);
    const clusterName = dnsLabel(args.clusterName ?? name);
    const labels = standardLabels('etcd', clusterName, 'database');
    const selector = selectorLabels('etcd', clusterName);
    const ns = pulumi.output(args.namespace);

    const peer = new k8s.core.v1.Service(
      `${name}-peer`,
      {
        metadata: { name: `${clusterName}-peer`, namespace: args.namespace, labels },
        spec: {
          clusterIP: 'None',
          publishNotReadyAddresses: true,
          selector,
          ports: [
            { name: 'peer', port: PEER_PORT, targetPort: 'peer' },
            { name: 'client', port: ETCD_CLIENT_PORT, targetPort: 'client' },
          ],
        },
      },
      { parent: this },
    );
    this.service = new k8s.core.v1.Service(
      `${name}-client`,
      {
        metadata: { name: clusterName, namespace: args.namespace, labels },
        spec: { selector, ports: [{ name: 'client', port: ETCD_CLIENT_PORT, targetPort: 'client' }] },
      },
      { parent: this },
    );
    this.statefulSet = new k8s.apps.v1.StatefulSet(
      `${name}-etcd`,
      {
        metadata: { name: clusterName, namespace: args.namespace, labels },
        spec: ns.apply((n) => etcdStatefulSetSpec(clusterName, n, args)),
      },
      { parent: this, dependsOn: [peer] },
    );
    new k8s.policy.v1.PodDisruptionBudget(
      `${name}-pdb`,
      {
        metadata: { name: clusterName, namespace: args.namespace, labels },
        // Keep quorum through voluntary disruptions (drains): at most one member down at a time.
        spec: { maxUnavailable: 1, selector: { matchLabels: selector } },
      },
      { parent: this },
    );
    new k8s.networking.v1.NetworkPolicy(
      `${name}-netpol`,
      {
        metadata: { name: clusterName, namespace: args.namespace, labels },
        spec: etcdNetworkPolicySpec(clusterName, args.allowedClients),
      },
      { parent: this },
    );
    this.endpoint = pulumi.secret(pulumi.interpolate`http://${this.service.metadata.name}.${ns}.svc:${ETCD_CLIENT_PORT}`);
    this.registerOutputs({ endpoint: this.endpoint });
  }
}

/** Clients on 2379 only from `allowedClients`; peers and metrics between members; nothing else. */
export function etcdNetworkPolicySpec(name: string, allowedClients?: k8s.types.input.networking.v1.NetworkPolicyPeer[]): k8s.types.input.networking.v1.NetworkPolicySpec {
  const selector = selectorLabels('etcd', name);
  return {
    podSelector: { matchLabels: selector },
    policyTypes: ['Ingress'],
    ingress: [
      {
        from: allowedClients ?? [{ podSelector: { matchLabels: { 'app.kubernetes.io/part-of': 'harikube', 'app.kubernetes.io/component': 'middleware' } } }],
        ports: [{ protocol: 'TCP', port: ETCD_CLIENT_PORT }],
      },
      {
        from: [{ podSelector: { matchLabels: selector } }],
        ports: [
          { protocol: 'TCP', port: ETCD_CLIENT_PORT },
          { protocol: 'TCP', port: PEER_PORT },
        ],
      },
    ],
  };
}

/**
 * `HariKubePlatform`: the whole deployment from one typed declaration: database operators and instances, the
 * TopologyConfig operator, TLS, and a tree of middleware layers whose rules name their backends by reference
 * (`{ postgres: "main", database: "configmaps" }`, `{ layer: "kube-system" }`) instead of by endpoint.
 *
 * Planning (`planPlatform`, pure) resolves references, finds the root layer (the one no other layer points
 * at: it serves the Kubernetes API server), orders layers children-first (a parent's rules need its
 * children's endpoints), collects the databases each instance must create, and rejects what would be wrong at
 * runtime: cycles, unknown references, two rules or layers sharing one database (each backend is a separate
 * identity with its own revisions), SQLite files under a multi-replica layer.
 */
import * as pulumi from '@pulumi/pulumi';
import * as k8s from '@pulumi/kubernetes';
import * as random from '@pulumi/random';
import type { BackendRule, MigrationSettings } from '../middleware/src/topology/schema.js';
import type { RoutingTable } from '../middleware/src/topology/compile.js';
import { SECRET_DATA_KEY } from '../middleware/src/topology/secret-layout.js';
import { AppTopology, type AppTopologySettings } from './appTopology.js';
import { DatabaseOperators, type DatabaseOperatorsArgs } from './databaseOperators.js';
import { EtcdCluster, type EtcdClusterArgs } from './etcdCluster.js';
import { MariaDbInstance, type MariaDbInstanceArgs } from './mariaDbInstance.js';
import { Middleware, type ApiServerPeers, type MiddlewareStorage } from './middleware.js';
import { resolveImage, type ImageSource } from './middlewareImage.js';
import { DEFAULT_SQLITE_ENDPOINT, sqliteOnDataVolume } from './paths.js';
import { PostgresCluster, type PostgresClusterArgs } from './postgresCluster.js';
import { mountedTls, Topology, type BackendTlsMount, type TopologyRuleArgs } from './topology.js';
import { TopologyOperator } from './topologyOperator.js';
import { dnsLabel, standardLabels, waitForReady, type ResourceSettings } from './kube.js';

/** Where a rule's (or a layer's default) data goes, by reference to something the platform declares. */
export type BackendRef =
  | { /** Name of a `postgres` entry. */ postgres: string; /** Database; the cluster's bootstrap database when omitted. */ database?: string }
  | { /** Name of a `mariadb` entry. */ mariadb: string; /** Database; the instance's first database when omitted. */ database?: string }
  | { /** Name of an `etcd` entry. */ etcd: string }
  | { /** Name of another layer: this rule delegates to it. */ layer: string }
  | { /** SQLite file on the layer's data volume, e.g. `deployments.db`. */ sqlite: string }
  | { /** Any endpoint (secret input), e.g. an external database. */ endpoint: pulumi.Input<string>; /** Non-secret name for the routing table. */ target?: string };

/** A rule of a layer: a topology rule whose endpoint is a reference. */
export interface PlatformRule extends Omit<BackendRule, 'endpoint'> {
  /** The backend. */
  backend: BackendRef;
}

export interface PlatformLayer {
  /** Rules in order; the first match wins. */
  rules: PlatformRule[];
  /** Default backend (unmatched keys and the meta store); a SQLite file on the data volume when omitted. */
  defaultBackend?: Exclude<BackendRef, { layer: string }>;
  /** Replicas; default 1 (more need `leaderElection`). */
  replicas?: number;
  /**
   * Standbys behind leader election, and rollouts by lease hand-over (RollingUpdate, no gap beyond one
   * hand-over). Default: on when the default backend is PostgreSQL or MariaDB, no rule uses SQLite and no
   * `storage` is given (the data volume is then an emptyDir); otherwise off (Recreate).
   */
  leaderElection?: boolean;
  /** Data volume. */
  storage?: MiddlewareStorage;
  /** Requests/limits. */
  resources?: ResourceSettings;
  /**
   * `pulumi` (default): rules compiled here into a routing ConfigMap + topology Secret.
   * `operator` (root layer only): rules are published as a TopologyConfig at `topologyPosition`, merged by the
   * operator with applications' TopologyConfigs into the Secret the layer reads (`secret://`).
   */
  topologySource?: 'pulumi' | 'operator';
  /** Position of the platform's TopologyConfig with `topologySource: operator`; default 1 (first). */
  topologyPosition?: number;
  /**
   * Online migration: `keysPerSecond` caps how fast keys move when a routing change sends existing keys to
   * another backend (0: no limit; the middleware's default is 2000). In the compiled topology with
   * `topologySource: pulumi`; as `--migration-rate` with `operator` (TopologyConfigs carry rules only).
   */
  migration?: MigrationSettings;
}

export interface PlatformTls {
  /** Serve every layer over TLS with client certificates; default false. */
  enabled: boolean;
  /** A CA issuer (its Secrets carry `ca.crt`); when omitted a self-signed CA is bootstrapped in the namespace. */
  issuerRef?: { name: string; kind?: 'Issuer' | 'ClusterIssuer' };
}

export interface HariKubePlatformArgs {
  /** Namespace of the platform (created); default `harikube`. */
  namespace?: string;
  /** HariKube image for the middleware and the operator: a reference, or `{ build }`. */
  image: ImageSource;
  /** Image pull Secrets (in the namespace). */
  imagePullSecrets?: string[];
  /** Install CloudNativePG / mariadb-operator; default: those the declared databases need. `false`: they exist already. */
  databaseOperators?: DatabaseOperatorsArgs | false;
  /** PostgreSQL clusters by name. */
  postgres?: Record<string, Omit<PostgresClusterArgs, 'namespace' | 'databases' | 'operatorsReady' | 'clusterName'>>;
  /** MariaDB instances by name. */
  mariadb?: Record<string, Omit<MariaDbInstanceArgs, 'namespace' | 'databases' | 'operatorsReady' | 'instanceName'>>;
  /** etcd clusters by name. */
  etcd?: Record<string, Omit<EtcdClusterArgs, 'namespace' | 'allowedClients' | 'clusterName'>>;
  /** Middleware layers by name; exactly one (the root) is not referenced by another. */
  layers: Record<string, PlatformLayer>;
  /** Who may call the root layer (the Kubernetes API server). */
  apiServer: ApiServerPeers;
  /** TLS between the API server and the root layer and between layers. */
  tls?: PlatformTls;
  /**
   * The TopologyConfig operator; default enabled. With it the root layer reads its topology from the operator
   * (`topologySource: operator`), so application teams' TopologyConfigs are routed.
   */
  topologyOperator?: {
    enabled?: boolean;
    replicas?: number;
    resources?: ResourceSettings;
    /**
     * Names of the endpoint encryption keys in the decrypt Secret, oldest first; default `["key-1"]`. Key
     * rotation: add a name (a new random key), make it `activeKey` (applications re-seal with it on their next
     * `pulumi up`), then remove the old name once every TopologyConfig is Active again.
     */
    keys?: string[];
    /** The key applications seal with (`encryptionKey` output); default the last of `keys`. */
    activeKey?: string;
    /** More namespaces whose Secrets the operator may use (e.g. teams' own decrypt Secrets for per-team keys). */
    secretNamespaces?: string[];
  };
  /**
   * Provider of the cluster whose API server HariKube serves, when it is not the cluster the platform is
   * deployed to (a hosted control plane): the TopologyOperator, its CRD and the platform's TopologyConfig go
   * there, because the operator must write the topology Secret into the storage the root layer reads
   * (`secret://` reads the root layer's own default backend). Default: the platform's provider.
   */
  controlPlaneProvider?: k8s.Provider;
}

/** The result of planning: references resolved, order fixed. */
export interface PlatformPlan {
  root: string;
  /** Layers children first. */
  order: string[];
  /** Layer -> layers it delegates to. */
  children: Record<string, string[]>;
  /** Layer -> its parent layer (root has none). */
  parentOf: Record<string, string>;
  /** Databases to create per instance. */
  postgresDatabases: Record<string, string[]>;
  mariadbDatabases: Record<string, string[]>;
  /** Operators needed by the declared databases. */
  needsCnpg: boolean;
  needsMariadb: boolean;
  /** Layer -> whether it runs with leader election (given, or the default). */
  leaderElection: Record<string, boolean>;
}

const BOOTSTRAP_DB = 'harikube';

function refKind(ref: BackendRef): string {
  return Object.keys(ref).find((k) => ['postgres', 'mariadb', 'etcd', 'layer', 'sqlite', 'endpoint'].includes(k)) ?? 'unknown';
}

/** Non-secret label of a reference for the routing table, e.g. `postgres/main/configmaps`. */
export function targetOf(ref: BackendRef, layer: string): string | undefined {
  if ('postgres' in ref) return `postgres/${ref.postgres}/${ref.database ?? BOOTSTRAP_DB}`;
  if ('mariadb' in ref) return `mariadb/${ref.mariadb}/${ref.database ?? BOOTSTRAP_DB}`;
  if ('etcd' in ref) return `etcd/${ref.etcd}`;
  if ('layer' in ref) return `layer/${ref.layer}`;
  if ('sqlite' in ref) return `sqlite/${layer}/${ref.sqlite}`;
  return ref.target;
}

export function planPlatform(args: Pick<HariKubePlatformArgs, 'layers' | 'postgres' | 'mariadb' | 'etcd'>): PlatformPlan {
  const layers = Object.keys(args.layers);
  if (layers.length === 0) throw new Error('HariKubePlatform: declare at least one layer');
  const children: Record<string, string[]> = {};
  const parentOf: Record<string, string> = {};
  const postgresDatabases: Record<string, string[]> = {};
  const mariadbDatabases: Record<string, string[]> = {};
  const owners = new Map<string, string>();
  const claim = (key: string, who: string) => {
    const prev = owners.get(key);
    if (prev) throw new Error(`HariKubePlatform: ${who} and ${prev} use the same backend ${key}; every rule and layer default needs its own database`);
    owners.set(key, who);
  };
  const use = (ref: BackendRef, layer: string, who: string) => {
    if ('postgres' in ref) {
      if (!args.postgres?.[ref.postgres]) throw new Error(`HariKubePlatform: ${who} refers to postgres "${ref.postgres}", which is not declared`);
      const db = ref.database ?? BOOTSTRAP_DB;
      (postgresDatabases[ref.postgres] ??= []).includes(db) || postgresDatabases[ref.postgres]!.push(db);
    } else if ('mariadb' in ref) {
      if (!args.mariadb?.[ref.mariadb]) throw new Error(`HariKubePlatform: ${who} refers to mariadb "${ref.mariadb}", which is not declared`);
      const db = ref.database ?? BOOTSTRAP_DB;
      (mariadbDatabases[ref.mariadb] ??= []).includes(db) || mariadbDatabases[ref.mariadb]!.push(db);
    } else if ('etcd' in ref) {
      if (!args.etcd?.[ref.etcd]) throw new Error(`HariKubePlatform: ${who} refers to etcd "${ref.etcd}", which is not declared`);
    } else if ('layer' in ref) {
      if (!args.layers[ref.layer]) throw new Error(`HariKubePlatform: ${who} refers to layer "${ref.layer}", which is not declared`);
      if (ref.layer === layer) throw new Error(`HariKubePlatform: ${who} refers to its own layer`);
      if (parentOf[ref.layer] && parentOf[ref.layer] !== layer) {
        throw new Error(`HariKubePlatform: layer "${ref.layer}" is referenced by both "${parentOf[ref.layer]}" and "${layer}"; a layer has one parent (it shares the parent's revision space)`);
      }
      parentOf[ref.layer] = layer;
      (children[layer] ??= []).includes(ref.layer) || children[layer]!.push(ref.layer);
    } else if ('sqlite' in ref) {
      sqliteOnDataVolume(ref.sqlite);
      const spec = args.layers[layer]!;
      if ((spec.replicas ?? 1) > 1) throw new Error(`HariKubePlatform: ${who} uses SQLite, but layer "${layer}" has several replicas`);
      if (spec.storage && 'ephemeral' in spec.storage) {
        pulumi.log.warn(`HariKubePlatform: ${who} stores data in SQLite on an ephemeral volume of layer "${layer}"; it is lost with the pod`);
      }
      claim(`sqlite/${layer}/${ref.sqlite}`, who);
      return;
    }
    const t = targetOf(ref, layer);
    if (t && !('layer' in ref)) claim(t, who);
  };
  for (const layer of layers) {
    dnsLabel('harikube', layer);
    const spec = args.layers[layer]!;
    spec.rules.forEach((r) => use(r.backend, layer, `layer "${layer}" rule "${r.name}"`));
    if ((spec.replicas ?? 1) > 1 && (!spec.defaultBackend || 'sqlite' in spec.defaultBackend)) {
      throw new Error(
        `HariKubePlatform: layer "${layer}" has ${spec.replicas} replicas but a SQLite default backend; a SQLite file has one writer on one volume. ` +
          'Give the layer a PostgreSQL or MariaDB defaultBackend (with leaderElection: true), or use replicas: 1',
      );
    }
    if (spec.defaultBackend) use(spec.defaultBackend, layer, `layer "${layer}" default backend`);
    else claim(`sqlite/${layer}/default.db`, `layer "${layer}" default backend`);
  }
  const roots = layers.filter((l) => !parentOf[l]);
  if (roots.length !== 1) {
    throw new Error(
      roots.length === 0
        ? 'HariKubePlatform: every layer is referenced by another; layers form a cycle'
        : `HariKubePlatform: layers ${roots.join(', ')} are all unreferenced; exactly one root layer serves the API server`,
    );
  }
  const order: string[] = [];
  const visiting = new Set<string>();
  const visit = (l: string) => {
    if (order.includes(l)) return;
    if (visiting.has(l)) throw new Error(`HariKubePlatform: layers form a cycle through "${l}"`);
    visiting.add(l);
    for (const c of children[l] ?? []) visit(c);
    visiting.delete(l);
    order.push(l);
  };
  visit(roots[0]!);
  const unreachable = layers.filter((l) => !order.includes(l));
  if (unreachable.length) throw new Error(`HariKubePlatform: layers ${unreachable.join(', ')} form a cycle unreachable from the root`);
  for (const [l, spec] of Object.entries(args.layers)) {
    if (spec.topologySource === 'operator' && l !== roots[0]) {
      throw new Error(`HariKubePlatform: layer "${l}": only the root layer can take its topology from the operator`);
    }
  }
  const leaderElection: Record<string, boolean> = {};
  for (const [l, spec] of Object.entries(args.layers)) {
    const sqlite = !spec.defaultBackend || 'sqlite' in spec.defaultBackend || spec.rules.some((r) => 'sqlite' in r.backend);
    if (spec.leaderElection && sqlite) {
      throw new Error(
        `HariKubePlatform: layer "${l}" has leaderElection but keeps SQLite files on its data volume; a leader-elected layer runs two pods at once ` +
          '(standbys, and the new pod of a rolling update) and a ReadWriteOnce volume attaches to one node. Move those backends to PostgreSQL or MariaDB, or set leaderElection: false',
      );
    }
    const network = !!spec.defaultBackend && ('postgres' in spec.defaultBackend || 'mariadb' in spec.defaultBackend);
    leaderElection[l] = spec.leaderElection ?? (network && !sqlite && (!spec.storage || 'ephemeral' in spec.storage));
  }
  for (const name of Object.keys(args.postgres ?? {})) postgresDatabases[name] ??= [BOOTSTRAP_DB];
  for (const name of Object.keys(args.mariadb ?? {})) mariadbDatabases[name] ??= [BOOTSTRAP_DB];
  return {
    root: roots[0]!,
    order,
    children,
    parentOf,
    postgresDatabases,
    mariadbDatabases,
    needsCnpg: Object.keys(args.postgres ?? {}).length > 0,
    needsMariadb: Object.keys(args.mariadb ?? {}).length > 0,
    leaderElection,
  };
}

export class HariKubePlatform extends pulumi.ComponentResource {
  /** Namespace of the platform. */
  public readonly namespace: pulumi.Output<string>;
  /** Endpoint of the root layer: what the API server's `--etcd-servers` points at. */
  public readonly endpoint: pulumi.Output<string>;
  /** Middleware layers by name. */
  public readonly layers: Record<string, Middleware>;
  /** Compiled topologies of layers with `topologySource: pulumi`. */
  public readonly topologies: Record<string, Topology>;
  /** Routing tables by layer (not secret). */
  public readonly routing: Record<string, pulumi.Output<RoutingTable>>;
  /** The operator, when enabled. */
  public readonly operator?: TopologyOperator;
  /** `namespace/name` of the topology Secret the operator writes (apps' TopologyConfigs target it); none without the operator. */
  public readonly targetSecret?: string;
  /**
   * What application stacks need (export it; `appTopologySettings()` reads it): where TopologyConfigs go and
   * how to seal endpoints, or why this platform does not route them.
   */
  public readonly appTopologies: pulumi.Output<AppTopologySettings>;
  /** `namespace/name` of the Secret with the endpoint decryption key (apps' `encryption.decryptSecret`). */
  public readonly decryptSecret?: string;
  /** The endpoint encryption key, base64 (secret; apps' `encryption.key`). */
  public readonly encryptionKey?: pulumi.Output<string>;
  /** Secret with the API server's client certificate for the root layer (TLS only). */
  public readonly apiServerClientSecretName?: string;
  /** The resolved plan. */
  public readonly plan: PlatformPlan;

  constructor(name: string, args: HariKubePlatformArgs, opts?: pulumi.ComponentResourceOptions) {
    super('harikube:index:HariKubePlatform', name, {}, opts);
    this.plan = planPlatform(args);
    const nsName = args.namespace ?? 'harikube';
    const ns = new k8s.core.v1.Namespace(`${name}-ns`, { metadata: { name: nsName, labels: { 'app.kubernetes.io/part-of': 'harikube' } } }, { parent: this });
    this.namespace = ns.metadata.name;
    const platform: PlatformContext = {
      plan: this.plan,
      nsName,
      namespace: this.namespace,
      labels: standardLabels('harikube', name, 'platform'),
      image: resolveImage(`${name}-image`, args.image, this),
      parent: this,
      inNs: { parent: this, dependsOn: [ns] },
      ns,
    };
    const databases = createDatabases(name, args, platform);
    const tls = createCertificateAuthority(name, args, platform);
    this.apiServerClientSecretName = tls?.apiServerClientSecretName;
    // before the layers: an operator-managed root reads what it writes
    const operator = createTopologyOperator(name, args, platform);
    this.operator = operator?.operator;
    this.targetSecret = operator?.settings.targetSecret;
    this.decryptSecret = operator?.settings.decryptSecret;
    this.encryptionKey = operator?.settings.encryptionKey;
    this.appTopologies = operator
      ? pulumi.output(operator.settings)
      : pulumi.output({
          unavailable: `platform namespace ${nsName} runs without the TopologyConfig operator (harikube:topologyOperator false): application TopologyConfigs would not be routed. Ask the platform team to turn the operator on.`,
        });
    const layers = createLayers(name, args, platform, { databases, tls, operator });
    this.layers = layers.layers;
    this.topologies = layers.topologies;
    this.routing = layers.routing;
    this.endpoint = this.layers[this.plan.root]!.endpoint;
    this.registerOutputs({ endpoint: this.endpoint, namespace: this.namespace, targetSecret: this.targetSecret });
  }
}

/** What the platform's children share. */
interface PlatformContext {
  plan: PlatformPlan;
  /** The namespace's name as declared. */
  nsName: string;
  /** The namespace's name once it exists. */
  namespace: pulumi.Output<string>;
  ns: k8s.core.v1.Namespace;
  /** Labels of the platform's own objects. */
  labels: Record<string, string>;
  /** The HariKube image of the middleware and the operator. */
  image: pulumi.Output<string>;
  /** The HariKubePlatform: every child's parent. */
  parent: pulumi.Resource;
  /** Options of a child in the namespace: parented, created after the namespace. */
  inNs: pulumi.CustomResourceOptions;
}

/** The declared databases by name. */
interface PlatformDatabases {
  postgres: Record<string, PostgresCluster>;
  mariadb: Record<string, MariaDbInstance>;
  etcd: Record<string, EtcdCluster>;
}

/** The database operators the declared databases need (unless `databaseOperators: false`), and the databases. */
function createDatabases(name: string, args: HariKubePlatformArgs, platform: PlatformContext): PlatformDatabases {
  const { plan, namespace, inNs } = platform;
  let operatorsReady: pulumi.Resource[] = [];
  if (args.databaseOperators !== false && (plan.needsCnpg || plan.needsMariadb)) {
    const d = args.databaseOperators || {};
    const operators = new DatabaseOperators(
      `${name}-db-operators`,
      {
        cloudNativePg: { enabled: plan.needsCnpg, ...d.cloudNativePg },
        mariadbOperator: { enabled: plan.needsMariadb, ...d.mariadbOperator },
      },
      { parent: platform.parent },
    );
    operatorsReady = operators.ready;
  }
  const postgres: Record<string, PostgresCluster> = {};
  for (const [db, spec] of Object.entries(args.postgres ?? {})) {
    const dbs = plan.postgresDatabases[db]!;
    postgres[db] = new PostgresCluster(`${name}-pg-${db}`, { ...spec, clusterName: dnsLabel('harikube', 'pg', db), namespace, database: BOOTSTRAP_DB, databases: dbs, operatorsReady }, inNs);
  }
  const mariadb: Record<string, MariaDbInstance> = {};
  for (const [db, spec] of Object.entries(args.mariadb ?? {})) {
    mariadb[db] = new MariaDbInstance(`${name}-mariadb-${db}`, { ...spec, instanceName: dnsLabel('harikube', 'mariadb', db), namespace, databases: plan.mariadbDatabases[db], operatorsReady }, inNs);
  }
  const etcd: Record<string, EtcdCluster> = {};
  for (const [db, spec] of Object.entries(args.etcd ?? {})) {
    etcd[db] = new EtcdCluster(`${name}-etcd-${db}`, { ...spec, clusterName: dnsLabel('harikube', 'etcd', db), namespace }, inNs);
  }
  return { postgres, mariadb, etcd };
}

/** TLS of the platform: the issuer every certificate comes from, and how to ask it for a client certificate. */
interface PlatformTlsIssuer {
  issuerRef: { name: string; kind: 'Issuer' | 'ClusterIssuer' };
  /** Secret with the API server's client certificate for the root layer. */
  apiServerClientSecretName: string;
  /** A cert-manager Certificate `objectName` (also its Secret's name), issued by `issuerRef`. */
  certificate(logical: string, objectName: string, usages: string[], commonName: string): k8s.apiextensions.CustomResource;
}

/**
 * With `tls.enabled`: the CA issuer (given, or a self-signed CA bootstrapped in the namespace) and the API
 * server's client certificate; none without TLS.
 */
function createCertificateAuthority(name: string, args: HariKubePlatformArgs, platform: PlatformContext): PlatformTlsIssuer | undefined {
  const tls = args.tls?.enabled ? args.tls : undefined;
  if (!tls) return undefined;
  const { namespace, labels, inNs, parent } = platform;
  let issuerRef: PlatformTlsIssuer['issuerRef'];
  if (tls.issuerRef) {
    issuerRef = { name: tls.issuerRef.name, kind: tls.issuerRef.kind ?? 'ClusterIssuer' };
  } else {
    const selfSigned = new k8s.apiextensions.CustomResource(
      `${name}-selfsigned-issuer`,
      { apiVersion: 'cert-manager.io/v1', kind: 'Issuer', metadata: { name: 'harikube-selfsigned', namespace, labels }, spec: { selfSigned: {} } },
      inNs,
    );
    const ca = new k8s.apiextensions.CustomResource(
      `${name}-ca`,
      {
        apiVersion: 'cert-manager.io/v1',
        kind: 'Certificate',
        metadata: { name: 'harikube-ca', namespace, labels, annotations: waitForReady() },
        spec: {
          isCA: true,
          commonName: 'harikube-ca',
          secretName: 'harikube-ca',
          duration: '87600h',
          privateKey: { algorithm: 'ECDSA', size: 256 },
          issuerRef: { name: 'harikube-selfsigned', kind: 'Issuer', group: 'cert-manager.io' },
        },
      },
      { parent, dependsOn: [selfSigned] },
    );
    new k8s.apiextensions.CustomResource(
      `${name}-ca-issuer`,
      { apiVersion: 'cert-manager.io/v1', kind: 'Issuer', metadata: { name: 'harikube-ca', namespace, labels, annotations: waitForReady() }, spec: { ca: { secretName: 'harikube-ca' } } },
      { parent, dependsOn: [ca] },
    );
    issuerRef = { name: 'harikube-ca', kind: 'Issuer' };
  }
  const certificate = (logical: string, objectName: string, usages: string[], commonName: string) =>
    new k8s.apiextensions.CustomResource(
      `${name}-${logical}`,
      {
        apiVersion: 'cert-manager.io/v1',
        kind: 'Certificate',
        metadata: { name: objectName, namespace, labels, annotations: waitForReady() },
        spec: {
          secretName: objectName,
          commonName,
          usages,
          issuerRef: { ...issuerRef, group: 'cert-manager.io' },
          privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
          duration: '2160h',
          renewBefore: '360h',
        },
      },
      inNs,
    );
  const apiServerClientSecretName = 'harikube-apiserver-client';
  certificate('apiserver-client', apiServerClientSecretName, ['client auth', 'digital signature'], 'kube-apiserver');
  return { issuerRef, apiServerClientSecretName, certificate };
}

/** The TopologyConfig operator and what application stacks need to reach it. */
interface PlatformOperator {
  operator: TopologyOperator;
  settings: { targetSecret: string; decryptSecret: string; encryptionKey: pulumi.Output<string> };
}

/**
 * The TopologyConfig operator (default on; none with `topologyOperator.enabled: false`), in the control
 * plane's cluster, with the endpoint encryption keys (one random key per name, kept as long as the name is
 * listed) in the Secret it decrypts with.
 */
function createTopologyOperator(name: string, args: HariKubePlatformArgs, platform: PlatformContext): PlatformOperator | undefined {
  const { plan, nsName, labels, image, inNs, parent } = platform;
  const operatorOn = args.topologyOperator?.enabled !== false;
  const rootSpec = args.layers[plan.root]!;
  if (operatorOn && rootSpec.topologySource === 'pulumi') {
    throw new Error(
      `HariKubePlatform: the root layer "${plan.root}" has topologySource: pulumi while the TopologyConfig operator is on: ` +
        "applications' TopologyConfigs would be merged into a Secret no middleware reads. Remove topologySource (the root layer then reads the operator's Secret), or turn the operator off",
    );
  }
  if (!operatorOn) return undefined;
  const elsewhere = args.controlPlaneProvider;
  const targetSecret = `${nsName}/topology-config`;
  const operator = new TopologyOperator(
    `${name}-operator`,
    // In another cluster the namespace does not exist yet: the operator component creates it there.
    {
      namespace: nsName,
      createNamespace: !!elsewhere,
      image,
      replicas: args.topologyOperator?.replicas,
      resources: args.topologyOperator?.resources,
      imagePullSecrets: args.imagePullSecrets,
      secretNamespaces: [nsName, ...(args.topologyOperator?.secretNamespaces ?? []).filter((n) => n !== nsName)],
    },
    elsewhere ? { parent, providers: [elsewhere] } : inNs,
  );
  const names = args.topologyOperator?.keys?.length ? args.topologyOperator.keys : ['key-1'];
  const active = args.topologyOperator?.activeKey ?? names[names.length - 1]!;
  if (!names.includes(active)) throw new Error(`HariKubePlatform: topologyOperator.activeKey "${active}" is not one of topologyOperator.keys (${names.join(', ')})`);
  for (const n of names) {
    if (!SECRET_DATA_KEY.test(n)) throw new Error(`HariKubePlatform: topologyOperator.keys: "${n}" is not a valid Secret data key`);
  }
  // One random key per name: a name keeps its key for as long as it is listed (the state holds it).
  const keys = Object.fromEntries(names.map((n) => [n, pulumi.secret(new random.RandomBytes(`${name}-topology-encryption-${n}`, { length: 32 }, { parent, ...(n === 'key-1' ? { aliases: [{ name: `${name}-topology-encryption-key` }] } : {}) }).base64)]));
  new k8s.core.v1.Secret(
    `${name}-topology-endpoint-keys`,
    // data is base64 of the value: the key's base64 text stores the raw 32 bytes, which the operator reads.
    { metadata: { name: 'topology-endpoint-keys', namespace: nsName, labels }, type: 'Opaque', data: keys },
    elsewhere ? { parent, provider: elsewhere, dependsOn: [operator] } : inNs,
  );
  return { operator, settings: { targetSecret, decryptSecret: `${nsName}/topology-endpoint-keys`, encryptionKey: keys[active]! } };
}

/** The middleware layers by name, with the compiled topologies and the routing tables. */
interface PlatformLayers {
  layers: Record<string, Middleware>;
  topologies: Record<string, Topology>;
  routing: Record<string, pulumi.Output<RoutingTable>>;
}

/**
 * The layers, children first (a parent's rules need its children's endpoints): each one's rules with their
 * references resolved to endpoints (and, with TLS, a client certificate per child layer), compiled into a
 * Topology, or published as the platform's TopologyConfig for the operator (the root, when the operator is on).
 */
function createLayers(
  name: string,
  args: HariKubePlatformArgs,
  platform: PlatformContext,
  made: { databases: PlatformDatabases; tls?: PlatformTlsIssuer; operator?: PlatformOperator },
): PlatformLayers {
  const { plan, namespace, image, ns, inNs, parent } = platform;
  const { databases, tls, operator } = made;
  const out: PlatformLayers = { layers: {}, topologies: {}, routing: {} };
  const endpointOf = (ref: BackendRef): pulumi.Input<string> => {
    if ('postgres' in ref) return databases.postgres[ref.postgres]!.endpointFor(ref.database ?? BOOTSTRAP_DB);
    if ('mariadb' in ref) return databases.mariadb[ref.mariadb]!.endpointFor(ref.database ?? BOOTSTRAP_DB);
    if ('etcd' in ref) return databases.etcd[ref.etcd]!.endpoint;
    if ('layer' in ref) return out.layers[ref.layer]!.endpoint;
    if ('sqlite' in ref) return sqliteOnDataVolume(ref.sqlite);
    return ref.endpoint;
  };
  for (const layer of plan.order) {
    const spec = args.layers[layer]!;
    const isRoot = layer === plan.root;
    const clientCertificates: pulumi.Resource[] = [];
    const rules: TopologyRuleArgs[] = spec.rules.map(({ backend, ...rule }) => {
      const r: TopologyRuleArgs = { ...rule, endpoint: endpointOf(backend), target: targetOf(backend, layer) };
      if (tls && 'layer' in backend) {
        // The parent authenticates to the child with its own client certificate, mounted for this rule.
        const secretName = dnsLabel('harikube', layer, 'to', backend.layer);
        clientCertificates.push(tls.certificate(`client-${layer}-to-${backend.layer}`, secretName, ['client auth', 'digital signature'], `harikube-${layer}`));
        r.tlsSecretName = secretName;
      }
      return r;
    });
    const defaultEndpoint = spec.defaultBackend ? endpointOf(spec.defaultBackend) : DEFAULT_SQLITE_ENDPOINT;
    const defaultTarget = spec.defaultBackend ? targetOf(spec.defaultBackend, layer) : `sqlite/${layer}/default.db`;
    const common = {
      namespace,
      layerName: layer,
      image,
      replicas: spec.replicas,
      leaderElection: plan.leaderElection[layer],
      storage: spec.storage,
      resources: spec.resources,
      imagePullSecrets: args.imagePullSecrets,
      tls: tls ? { issuerRef: tls.issuerRef } : undefined,
      apiServer: isRoot ? args.apiServer : undefined,
      parentLayers: plan.parentOf[layer] ? [{ name: plan.parentOf[layer]! }] : undefined,
    };
    if (isRoot && operator ? spec.topologySource !== 'pulumi' : spec.topologySource === 'operator') {
      if (!operator) throw new Error(`HariKubePlatform: layer "${layer}" takes its topology from the operator, which is disabled`);
      const { targetSecret, encryptionKey, decryptSecret } = operator.settings;
      const platformRules = new AppTopology(
        `${name}-${layer}-rules`,
        {
          namespace,
          resourceName: dnsLabel('harikube', layer, 'platform'),
          position: spec.topologyPosition ?? 1,
          targetSecret,
          encryption: { key: encryptionKey, decryptSecret },
          rules: rules.map(({ target: _t, tlsSecretName, tlsMaterial: _m, ...r }) => (tlsSecretName !== undefined ? { ...r, backendTLS: mountedTls(r.name, r.backendTLS) } : r)),
          // The operator runs in this stack: wait for its CRD and Deployment, not for Ready (the
          // middleware that loads the rules is created after).
          waitForReady: false,
        },
        { parent, dependsOn: operator.operator.ready, ...(args.controlPlaneProvider ? { providers: [args.controlPlaneProvider] } : {}) },
      );
      const backendTlsMounts: BackendTlsMount[] = rules
        .filter((r) => r.tlsSecretName !== undefined)
        .map((r) => ({ rule: r.name, secretName: r.tlsSecretName!, mountPath: mountedTls(r.name).caFile!.replace(/\/ca\.crt$/, '') }));
      const extraArgs = spec.migration?.keysPerSecond !== undefined ? ['--migration-rate', String(spec.migration.keysPerSecond)] : undefined;
      out.layers[layer] = new Middleware(`${name}-${layer}`, { ...common, topologySecretRef: targetSecret, defaultEndpoint, backendTlsMounts, extraArgs }, { parent, dependsOn: [ns, platformRules, ...clientCertificates] });
      // The platform's own rules, described from their references (applications add theirs in the cluster).
      out.routing[layer] = pulumi.output(declaredRouting(spec, layer));
    } else {
      const topology = new Topology(`${name}-${layer}-topology`, { namespace, objectName: dnsLabel('harikube', layer), rules, defaultEndpoint, defaultTarget, migration: spec.migration }, inNs);
      out.topologies[layer] = topology;
      out.routing[layer] = topology.routing;
      // The pods mount the client certificates' Secrets: wait until cert-manager has issued them.
      out.layers[layer] = new Middleware(`${name}-${layer}`, { ...common, topology }, { parent, dependsOn: [ns, ...clientCertificates] });
    }
  }
  return out;
}

const REF_TYPES: Record<string, string> = { postgres: 'postgres', mariadb: 'mysql', etcd: 'etcd', layer: 'etcd', sqlite: 'sqlite', endpoint: 'unknown' };

/** A routing table from a layer's declaration alone (no endpoints needed): for operator-managed layers. */
export function declaredRouting(spec: PlatformLayer, layer: string): RoutingTable {
  const describe = (ref: BackendRef) => {
    const target = targetOf(ref, layer);
    return { type: REF_TYPES[refKind(ref)] ?? 'unknown', ...(target ? { target } : {}) };
  };
  return {
    rules: spec.rules.map(({ backend, name, namespace, prefix, customresource, regexp }, i) => ({
      name,
      position: i + 1,
      match: { ...(namespace ? { namespace } : {}), ...(prefix ? { prefix } : {}), ...(customresource ? { customresource } : {}), ...(regexp ? { regexp } : {}) },
      backend: describe(backend),
    })),
    default: spec.defaultBackend ? describe(spec.defaultBackend) : { type: 'sqlite', target: `sqlite/${layer}/default.db` },
  };
}


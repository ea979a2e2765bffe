/**
 * `PostgresCluster`: a CloudNativePG `Cluster` plus the credentials HariKube connects with.
 *
 * The owner's password is a `RandomPassword` (Pulumi secret) stored only in a `kubernetes.io/basic-auth`
 * Secret that CloudNativePG's `initdb` bootstrap reads; the `endpoint` output is a Pulumi secret in the
 * topology's format. Extra databases (one per topology rule: each rule needs its own endpoint) are CNPG
 * `Database` resources owned by the same role. The Cluster carries `pulumi.com/waitFor: condition=Ready`, and
 * every endpoint depends on it, so whatever consumes an endpoint waits for a ready database.
 */
import * as pulumi from '@pulumi/pulumi';
import * as k8s from '@pulumi/kubernetes';
import * as random from '@pulumi/random';
import { dnsLabel, resourceRequirements, serviceHost, standardLabels, waitForReady, WAIT_FOR_ANNOTATION, type ResourceSettings } from './kube.js';

export interface PostgresClusterArgs {
  /** Namespace of the cluster and its Secret (must exist). */
  namespace: pulumi.Input<string>;
  /** Name of the CNPG Cluster (and prefix of its Services); defaults to the component name. */
  clusterName?: string;
  /** PostgreSQL instances (1 primary + replicas); default 1. Use 3 for production. */
  instances?: number;
  /** Volume size per instance; default `10Gi`. */
  storageSize?: string;
  /** StorageClass of the volumes; the cluster default when omitted. */
  storageClass?: string;
  /** Operand image (e.g. `ghcr.io/cloudnative-pg/postgresql:17.5`); the operator's default when omitted. */
  imageName?: string;
  /** Database created at bootstrap; default `harikube`. */
  database?: string;
  /** Role owning every database; default `harikube`. */
  owner?: string;
  /** Additional databases (CNPG `Database` resources), one per topology rule that uses this cluster. */
  databases?: string[];
  /** `postgresql.conf` parameters. */
  parameters?: Record<string, string>;
  /** Requests/limits of each instance. */
  resources?: ResourceSettings;
  /** Resources the custom resources must wait for: the `DatabaseOperators.ready` charts. */
  operatorsReady?: pulumi.Resource[];
}

const DB_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** The CNPG Cluster spec (pure; unit-tested). */
export function postgresClusterSpec(args: PostgresClusterArgs, credentialsSecret: string): Record<string, unknown> {
  return {
    instances: args.instances ?? 1,
    ...(args.imageName ? { imageName: args.imageName } : {}),
    // Failover of the primary is the operator's job; rolling updates need no human.
    primaryUpdateStrategy: 'unsupervised',
    enableSuperuserAccess: false,
    storage: { size: args.storageSize ?? '10Gi', ...(args.storageClass ? { storageClass: args.storageClass } : {}) },
    bootstrap: {
      initdb: { database: args.database ?? 'harikube', owner: args.owner ?? 'harikube', secret: { name: credentialsSecret } },
    },
    ...(args.parameters ? { postgresql: { parameters: args.parameters } } : {}),
    resources: resourceRequirements(args.resources ?? {}, { cpuRequest: '250m', memoryRequest: '512Mi', memoryLimit: '1Gi' }),
  };
}

/** `postgres://user:pass@host:5432/db`, the topology's PostgreSQL endpoint format. */
export function postgresEndpoint(user: string, password: string, host: string, database: string, port = 5432): string {
  return `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@${host}:${port}/${database}`;
}

export class PostgresCluster extends pulumi.ComponentResource {
  /** Endpoint of the bootstrap database (Pulumi secret). */
  public readonly endpoint: pulumi.Output<string>;
  /** Read-write Service host (`<cluster>-rw.<ns>.svc`). */
  public readonly host: pulumi.Output<string>;
  /** Name of the basic-auth Secret with the owner's credentials. */
  public readonly credentialsSecretName: pulumi.Output<string>;
  /** The CNPG Cluster. */
  public readonly cluster: k8s.apiextensions.CustomResource;
  /** Every database this component provides (bootstrap + `databases`). */
  public readonly databaseNames: string[];
  private readonly endpoints = new Map<string, pulumi.Output<string>>();

  constructor(name: string, args: PostgresClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super('harikube:index:PostgresCluster', name, {}, opts);
    const clusterName = dnsLabel(args.clusterName ?? name);
    const owner = args.owner ?? 'harikube';
    const bootstrapDb = args.database ?? 'harikube';
    this.databaseNames = [...new Set([bootstrapDb, ...(args.databases ?? [])])];
    for (const db of [...this.databaseNames, owner]) {
      if (!DB_NAME.test(db)) throw new Error(`PostgresCluster ${name}: "${db}" is not a valid database/role name (lowercase letters, digits, "_")`);
    }
    const labels = standardLabels('postgresql', clusterName, 'database');

    // Alphanumeric only: the password goes into a URL and must survive every client's parser unescaped too.
    const password = new random.RandomPassword(`${name}-owner-password`, { length: 32, special: false }, { parent: this });
    const credentials = new k8s.core.v1.Secret(
      `${name}-owner-credentials`,
      {
        metadata: { name: `${clusterName}-owner`, namespace: args.namespace, labels },
        type: 'kubernetes.io/basic-auth',
        stringData: { username: owner, password: pulumi.secret(password.result) },
      },
      { parent: this },
    );
    this.credentialsSecretName = credentials.metadata.name;

    this.cluster = new k8s.apiextensions.CustomResource(
      `${name}-cluster`,
      {
        apiVersion: 'postgresql.cnpg.io/v1',
        kind: 'Cluster',
        metadata: { name: clusterName, namespace: args.namespace, labels, annotations: waitForReady() },
        spec: postgresClusterSpec(args, `${clusterName}-owner`),
      },
      { parent: this, dependsOn: [...(args.operatorsReady ?? []), credentials] },
    );
    this.host = pulumi.interpolate`${this.cluster.metadata.name}-rw.${args.namespace}.svc`;

    for (const db of this.databaseNames) {
      let gate: pulumi.Output<unknown> = this.cluster.metadata.name;
      if (db !== bootstrapDb) {
        const database = new k8s.apiextensions.CustomResource(
          `${name}-db-${db}`,
          {
            apiVersion: 'postgresql.cnpg.io/v1',
            kind: 'Database',
            metadata: {
              name: dnsLabel(clusterName, db.replace(/_/g, '-')),
              namespace: args.namespace,
              labels,
              // CNPG reports reconciliation in status.applied; there is no Ready condition on Database.
              annotations: { [WAIT_FOR_ANNOTATION]: 'jsonpath={.status.applied}=true' },
            },
            // retain: deleting the resource must never drop a database holding Kubernetes objects.
            spec: { name: db, owner, cluster: { name: clusterName }, ensure: 'present', databaseReclaimPolicy: 'retain' },
          },
          { parent: this, dependsOn: [this.cluster] },
        );
        gate = database.metadata.name;
      }
      this.endpoints.set(
        db,
        pulumi.secret(
          pulumi
            .all([password.result, args.namespace, this.cluster.metadata.name, gate])
            .apply(([pw, ns, cluster]) => postgresEndpoint(owner, pw, serviceHost(`${cluster}-rw`, ns), db)),
        ),
      );
    }
    this.endpoint = this.endpoints.get(bootstrapDb)!;
    this.registerOutputs({ endpoint: this.endpoint, host: this.host, credentialsSecretName: this.credentialsSecretName });
  }

  /** Secret endpoint of one of `databaseNames`; throws for a database this cluster does not declare. */
  endpointFor(database: string): pulumi.Output<string> {
    const e = this.endpoints.get(database);
    if (!e) throw new Error(`PostgresCluster: database "${database}" is not declared (add it to "databases"; have ${this.databaseNames.join(', ')})`);
    return e;
  }
}

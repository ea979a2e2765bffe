/**
 * `MariaDbInstance`: a mariadb-operator `MariaDB` plus, per database HariKube uses, `Database` and `Grant`
 * resources, and one `User`.
 *
 * The root password is generated in-cluster by the operator (HariKube never needs it, so it never enters
 * Pulumi state). The application user's password is a `RandomPassword` stored only in a Secret the `User`
 * resource references. Every resource waits for `condition=Ready`; endpoints (Pulumi secrets, the topology's
 * `mysql://user:pass@tcp(host:3306)/db` format) depend on the grant of their database, so a consumer of an
 * endpoint waits until the user can actually use it.
 */
import * as pulumi from '@pulumi/pulumi';
import * as k8s from '@pulumi/kubernetes';
import * as random from '@pulumi/random';
import { dnsLabel, resourceRequirements, serviceHost, standardLabels, waitForReady, type ResourceSettings } from './kube.js';

export interface MariaDbInstanceArgs {
  /** Namespace of the instance and its Secrets (must exist). */
  namespace: pulumi.Input<string>;
  /** Name of the `MariaDB` resource (and its Service); defaults to the component name. */
  instanceName?: string;
  /** Replicas; default 1. More than one enables the operator's asynchronous replication and HariKube talks to `<name>-primary`. */
  replicas?: number;
  /** Volume size; default `10Gi`. */
  storageSize?: string;
  /** StorageClass of the volume; the cluster default when omitted. */
  storageClass?: string;
  /** MariaDB image; the operator's default when omitted. */
  image?: string;
  /** Databases to create; default `["harikube"]`. One per topology rule that uses this instance. */
  databases?: string[];
  /** User HariKube connects as; default `harikube`. */
  username?: string;
  /** Requests/limits of the server. */
  resources?: ResourceSettings;
  /** Resources the custom resources must wait for: the `DatabaseOperators.ready` charts. */
  operatorsReady?: pulumi.Resource[];
}

const DB_NAME = /^[A-Za-z0-9_]{1,64}$/;

/** `mysql://user:pass@tcp(host:port)/db`, the topology's MySQL endpoint format. */
export function mysqlEndpoint(user: string, password: string, host: string, database: string, port = 3306): string {
  return `mysql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@tcp(${host}:${port})/${database}`;
}

/** The `MariaDB` spec (pure; unit-tested). */
export function mariaDbSpec(args: MariaDbInstanceArgs, rootSecret: string): Record<string, unknown> {
  const replicas = args.replicas ?? 1;
  return {
    // generate: the operator creates the root password in-cluster; it never passes through Pulumi.
    rootPasswordSecretKeyRef: { name: rootSecret, key: 'password', generate: true },
    ...(args.image ? { image: args.image } : {}),
    replicas,
    ...(replicas > 1 ? { replication: { enabled: true } } : {}),
    storage: { size: args.storageSize ?? '10Gi', ...(args.storageClass ? { storageClassName: args.storageClass } : {}) },
    // Kubernetes keys are compared bytewise; a binary collation keeps MySQL's order the same.
    myCnf: '[mariadb]\ncharacter-set-server=utf8mb4\ncollation-server=utf8mb4_bin\n',
    resources: resourceRequirements(args.resources ?? {}, { cpuRequest: '250m', memoryRequest: '512Mi', memoryLimit: '1Gi' }),
  };
}

export class MariaDbInstance extends pulumi.ComponentResource {
  /** Endpoint of the first database (Pulumi secret). */
  public readonly endpoint: pulumi.Output<string>;
  /** Host HariKube connects to (`<name>.<ns>.svc`, or `<name>-primary...` with replication). */
  public readonly host: pulumi.Output<string>;
  /** The `MariaDB` resource. */
  public readonly mariadb: k8s.apiextensions.CustomResource;
  /** Name of the Secret with the user's password. */
  public readonly passwordSecretName: pulumi.Output<string>;
  /** Every database this instance provides. */
  public readonly databaseNames: string[];
  private readonly endpoints = new Map<string, pulumi.Output<string>>();

  constructor(name: string, args: MariaDbInstanceArgs, opts?: pulumi.ComponentResourceOptions) {
    super('harikube:index:MariaDbInstance', name, {}, opts);
    const instance = dnsLabel(args.instanceName ?? name);
    const username = args.username ?? 'harikube';
    this.databaseNames = [...new Set(args.databases?.length ? args.databases : ['harikube'])];
    for (const db of [...this.databaseNames, username]) {
      if (!DB_NAME.test(db)) throw new Error(`MariaDbInstance ${name}: "${db}" is not a valid database/user name (letters, digits, "_")`);
    }
    const labels = standardLabels('mariadb', instance, 'database');
    const after = args.operatorsReady ?? [];

    const password = new random.RandomPassword(`${name}-user-password`, { length: 32, special: false }, { parent: this });
    const userSecret = new k8s.core.v1.Secret(
      `${name}-user-password`,
      {
        // The operator watches labelled Secrets, so a rotated password is applied to the user.
        metadata: { name: `${instance}-${username.replace(/_/g, '-')}-password`, namespace: args.namespace, labels: { ...labels, 'k8s.mariadb.com/watch': '' } },
        type: 'Opaque',
        stringData: { password: pulumi.secret(password.result) },
      },
      { parent: this },
    );
    this.passwordSecretName = userSecret.metadata.name;

    this.mariadb = new k8s.apiextensions.CustomResource(
      `${name}-mariadb`,
      {
        apiVersion: 'k8s.mariadb.com/v1alpha1',
        kind: 'MariaDB',
        metadata: { name: instance, namespace: args.namespace, labels, annotations: waitForReady() },
        spec: mariaDbSpec(args, `${instance}-root`),
      },
      { parent: this, dependsOn: after },
    );
    const ref = { name: instance };
    const user = new k8s.apiextensions.CustomResource(
      `${name}-user`,
      {
        apiVersion: 'k8s.mariadb.com/v1alpha1',
        kind: 'User',
        metadata: { name: dnsLabel(instance, username.replace(/_/g, '-')), namespace: args.namespace, labels, annotations: waitForReady() },
        spec: { mariaDbRef: ref, name: username, host: '%', passwordSecretKeyRef: { name: userSecret.metadata.name, key: 'password' }, maxUserConnections: 200 },
      },
      { parent: this, dependsOn: [this.mariadb] },
    );
    const primary = (args.replicas ?? 1) > 1 ? `${instance}-primary` : instance;
    this.host = pulumi.interpolate`${primary}.${args.namespace}.svc`;

    for (const db of this.databaseNames) {
      const objectName = dnsLabel(instance, db.replace(/_/g, '-').toLowerCase());
      const database = new k8s.apiextensions.CustomResource(
        `${name}-db-${db}`,
        {
          apiVersion: 'k8s.mariadb.com/v1alpha1',
          kind: 'Database',
          metadata: { name: objectName, namespace: args.namespace, labels, annotations: waitForReady() },
          // Skip: deleting the resource must never drop a database holding Kubernetes objects.
          spec: { mariaDbRef: ref, name: db, characterSet: 'utf8mb4', collate: 'utf8mb4_bin', cleanupPolicy: 'Skip' },
        },
        { parent: this, dependsOn: [this.mariadb] },
      );
      const grant = new k8s.apiextensions.CustomResource(
        `${name}-grant-${db}`,
        {
          apiVersion: 'k8s.mariadb.com/v1alpha1',
          kind: 'Grant',
          metadata: { name: dnsLabel(objectName, 'grant'), namespace: args.namespace, labels, annotations: waitForReady() },
          // Everything on its own database only: the middleware creates and migrates its tables.
          spec: { mariaDbRef: ref, privileges: ['ALL PRIVILEGES'], database: db, table: '*', username, host: '%' },
        },
        { parent: this, dependsOn: [database, user] },
      );
      this.endpoints.set(
        db,
        pulumi.secret(
          pulumi
            .all([password.result, args.namespace, grant.metadata.name])
            .apply(([pw, ns]) => mysqlEndpoint(username, pw, serviceHost(primary, ns), db)),
        ),
      );
    }
    this.endpoint = this.endpoints.get(this.databaseNames[0]!)!;
    this.registerOutputs({ endpoint: this.endpoint, host: this.host, passwordSecretName: this.passwordSecretName });
  }

  /** Secret endpoint of one of `databaseNames`; throws for a database this instance does not declare. */
  endpointFor(database: string): pulumi.Output<string> {
    const e = this.endpoints.get(database);
    if (!e) throw new Error(`MariaDbInstance: database "${database}" is not declared (add it to "databases"; have ${this.databaseNames.join(', ')})`);
    return e;
  }
}

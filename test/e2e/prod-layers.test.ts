/**
 * Issue 12: the prod Pulumi stack's layers run as their Deployments would run them.
 *
 * stacks/platform/Pulumi.prod.yaml is rendered under Pulumi mocks. Each middleware layer then starts as a real
 * process with its container's exact arguments and environment (valueFrom resolved from the rendered Secrets),
 * its volumes as the kubelet would mount them (rendered Secrets and the Secrets cert-manager would issue, as
 * files), and the root's topology made by the real TopologyConfig operator from the rendered TopologyConfig and
 * stored in the root's own store as kube-apiserver stores the operator's Secret, so the root reads it through
 * `secret://` as in production. Everything that differs from the cluster goes through `localize` (one
 * function, below) and test/support/local-cert-manager.ts (certificates for 127.0.0.1 instead of Service
 * names). Then keys written through the root over TLS are checked, database by database, to be where the
 * rules say and nowhere else, and read and watched back through the root with the root's revisions.
 *
 * A test of the manifests alone cannot tell whether a layer accepts its own configuration; this one starts it.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import grpc from '@grpc/grpc-js';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { parse as parseYaml } from 'yaml';
import { keysFromSecretData, openEndpoint, sealEndpoint } from '../../middleware/src/operator/decrypt.js';
import { parseReport, REPORT_FOR_LABEL } from '../../middleware/src/topology/apply-report.js';
import { parseEndpoint, type SqlServerEndpoint } from '../../middleware/src/topology/endpoint.js';
import { REPO, runStack, type StackRun } from '../components/stack-runner.js';
import { startOperator, statusOf } from '../operator/harness.js';
import { b } from '../support/bytes.js';
import { ServerProcess } from '../support/child.js';
import { CLI_ARGS } from '../support/cli.js';
import { freePort, MYSQL_URL, mysqlEndpoint, POSTGRES_URL, postgresEndpoint, skipUnless, uniqueDatabaseName } from '../support/env.js';
import { Etcd } from '../support/etcd.js';
import type * as T from '../support/etcd-types.js';
import { FakeKube } from '../support/fake-kube.js';
import { EtcdClient } from '../support/grpc.js';
import { issueCertificates } from '../support/local-cert-manager.js';
import { preparePod as prepareLocalPod } from '../support/local-kubelet.js';
import { metricValue } from '../support/metrics.js';
import { keysIn } from '../support/routed.js';
import { encodeStoredSecret } from '../support/stored-secret.js';
import { waitUntil } from '../support/wait.js';

const skip = await skipUnless('postgres', 'mysql', 'etcd', 'openssl');

/** Children first, as the platform creates them (a parent's rule needs its child's endpoint). */
const LAYERS = ['kube-system', 'root'] as const;
type Layer = (typeof LAYERS)[number];
/** Bounds for a start (tsx compiles the server; two shared cores) and for the topology to go live. */
const START_TIMEOUT_MS = 60_000;
const APPLY_TIMEOUT_MS = 30_000;

/** A layer's pod on this machine: one temp dir per volume, loopback ports, the process once started. */
interface Pod {
  layer: Layer;
  /** The rendered Deployment (plain). */
  deployment: any;
  dir: string;
  /** Container mount path -> local directory. */
  mounts: Map<string, string>;
  port: number;
  metricsPort: number;
  args: string[];
  env: Record<string, string>;
  proc?: ServerProcess;
}

/** Something of the cluster (a Service name, a container path, a wildcard listen address) left unmapped. */
const CLUSTER_ONLY = /\.svc\b|0\.0\.0\.0|=:\d|\/etc\/harikube|\/var\/lib\/harikube|\/var\/run\/harikube/;

const podName = (pod: Pod) => `${pod.deployment.metadata.name}-local`;
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('prod stack: each layer runs as its Deployment and routes as declared', { skip }, () => {
  let run: StackRun;
  let dir: string;
  let etcd: Etcd;
  let fake: FakeKube;
  let operator: ReturnType<typeof startOperator>;
  let client: EtcdClient;
  const pods = new Map<Layer, Pod>();
  const dbPrefix = uniqueDatabaseName('prodlayers');
  const scratch = { postgres: new Set<string>(), mysql: new Set<string>() };
  let issued: Map<string, Record<string, Buffer>>;
  /** The root's rule endpoint as the stack sealed it, and as sealed again for this machine. */
  let sealed: { rendered: string; local: string };

  const scratchDb = (kind: 'postgres' | 'mysql', name: string) => {
    const db = `${dbPrefix}_${name}`;
    scratch[kind].add(db);
    return db;
  };

  /**
   * The one place where a layer's pod and its local process differ. Every argument, environment value,
   * mounted Secret file and topology path or endpoint a layer gets passes through here (single pass, so what
   * one substitution writes is never rewritten by another):
   * - container paths (the Deployment's volume mounts) -> that pod's temp dirs;
   * - listen addresses (0.0.0.0:2379, :8080) -> free loopback ports, 127.0.0.1 only;
   * - the PostgreSQL and MariaDB Services with the stack's users and passwords -> the local servers' superusers
   *   (trust / no password), each database a scratch database of this run;
   * - the etcd Service -> a local etcd process; a layer's Service -> that layer's loopback address.
   */
  function localize(layer: Layer, text: string): string {
    const pod = pods.get(layer)!;
    const rules: Array<[RegExp, (m: RegExpExecArray) => string]> = [
      ...[...pod.mounts].map(([mountPath, local]): [RegExp, () => string] => [new RegExp(`${escapeRegExp(mountPath)}(?![\\w.-])`, 'y'), () => local]),
      [/0\.0\.0\.0:2379\b/y, () => `127.0.0.1:${pod.port}`],
      [/(?<==):8080\b/y, () => `127.0.0.1:${pod.metricsPort}`],
      [/postgres:\/\/[^@\s/]+@harikube-pg-main-rw\.harikube\.svc:5432\/(\w+)/y, (m) => postgresEndpoint(scratchDb('postgres', m[1]!))],
      [/mysql:\/\/[^@\s/]+@tcp\(harikube-mariadb-main-primary\.harikube\.svc:3306\)\/(\w+)/y, (m) => mysqlEndpoint(scratchDb('mysql', m[1]!))],
      [/http:\/\/harikube-etcd-pods\.harikube\.svc:2379\b/y, () => etcd.clientUrl],
      [/harikube-(root|kube-system)\.harikube\.svc:2379\b/y, (m) => `127.0.0.1:${pods.get(m[1] as Layer)!.port}`],
    ];
    let out = '';
    let i = 0;
    next: while (i < text.length) {
      for (const [re, to] of rules) {
        re.lastIndex = i;
        const m = re.exec(text);
        if (m) {
          out += to(m);
          i += m[0].length;
          continue next;
        }
      }
      out += text[i++];
    }
    assert.doesNotMatch(out, CLUSTER_ONLY, `layer ${layer}: "${out}" still names something of the cluster; map it in localize`);
    return out;
  }

  const rendered = (type: string, name: string): any => {
    const found = run.h.ofType(type).filter((r) => r.plain.metadata.name === name);
    assert.equal(found.length, 1, `the stack renders one ${type} named ${name}`);
    return found[0]!.plain;
  };

  /**
   * A Secret as the cluster would hold it: rendered by the stack (its `stringData`, the text of endpoints and
   * topologies, localized; `data` as the bytes given), or issued by cert-manager.
   */
  function secretData(layer: Layer, name: string): Record<string, Buffer> {
    const secret = run.h.ofType('kubernetes:core/v1:Secret').find((s) => s.plain.metadata.name === name)?.plain;
    if (secret) {
      return {
        ...Object.fromEntries(Object.entries<string>(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
        ...Object.fromEntries(Object.entries<string>(secret.stringData ?? {}).map(([k, v]) => [k, Buffer.from(localize(layer, v))])),
      };
    }
    const certificate = issued.get(name);
    if (certificate) return certificate;
    throw new Error(`Secret ${name}: neither rendered by the stack nor issued by cert-manager for one of its Certificates`);
  }

  /** Volumes, environment and arguments of a layer's container, as the kubelet would give them. */
  async function preparePod(pod: Pod): Promise<void> {
    const spec = pod.deployment.spec.template.spec;
    assert.equal(spec.containers.length, 1, `${pod.layer}: one container`);
    const c = spec.containers[0];
    assert.equal(c.command, undefined, `${pod.layer}: the image's entrypoint (harikube) runs; the test runs the CLI (support/cli.ts) in its place`);
    const { env, args } = await prepareLocalPod({
      deployment: pod.deployment,
      paths: Object.fromEntries(pod.mounts),
      podName: podName(pod),
      localize: (text) => localize(pod.layer, text),
      sources: {
        secret: (name) => secretData(pod.layer, name),
        configMap: (name) => Object.fromEntries(Object.entries<string>(rendered('kubernetes:core/v1:ConfigMap', name).data ?? {}).map(([k, v]) => [k, localize(pod.layer, v)])),
      },
    });
    pod.env = env;
    pod.args = args.map((a: string) => localize(pod.layer, a));
  }

  async function startPod(pod: Pod): Promise<void> {
    const c = pod.deployment.spec.template.spec.containers[0];
    const probe = c.readinessProbe.httpGet;
    assert.equal(c.ports.find((p: any) => p.name === probe.port)?.containerPort, 8080, 'the readiness probe is on the metrics port');
    const proc = new ServerProcess(`layer ${pod.layer}`, process.execPath, [...CLI_ARGS, ...pod.args], {
      cwd: REPO,
      // Only the Deployment's env, plus what any container has (PATH, HOSTNAME). No TMPDIR, as in the pod: the
      // temp dir is /tmp there and here (the middleware keeps nothing in it; tsx keeps its compile cache there).
      env: { PATH: process.env.PATH ?? '', HOSTNAME: podName(pod), ...pod.env },
    });
    pod.proc = proc;
    const readyz = `http://127.0.0.1:${pod.metricsPort}${probe.path}`;
    const outcome = await waitUntil(
      `layer ${pod.layer}: ${readyz} to answer 200 (its readiness probe)`,
      async () => {
        if (!proc.running) return 'exited';
        const res = await fetch(readyz, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer();
        return res.status === 200 ? 'ready' : undefined;
      },
      { timeoutMs: START_TIMEOUT_MS, intervalMs: 100 },
    ).catch((err: Error) => err.message);
    if (outcome !== 'ready') throw proc.failure(outcome === 'exited' ? 'the layer refused its own configuration and exited' : outcome);
  }

  /** Keys stored at an endpoint, read the database's own way (an etcd backend's own `harikube/` keys left out). */
  async function keysAt(endpoint: string): Promise<string[]> {
    const e = parseEndpoint(endpoint);
    if (e.kind === 'sqlite') return keysIn(e.path);
    if (e.kind === 'etcd') {
      const c = new EtcdClient(e.hosts[0]!);
      try {
        const r = await c.range({ key: b('\0'), range_end: b('\0'), keys_only: true });
        return r.kvs.map((kv) => kv.key.toString()).filter((k) => !k.startsWith('harikube/'));
      } finally {
        c.close();
      }
    }
    const s = e as SqlServerEndpoint;
    if (s.kind === 'postgres') {
      const c = new pg.Client({ host: s.host, port: s.port, user: s.user, password: s.password, database: s.database });
      await c.connect();
      try {
        return (await c.query<{ name: Buffer }>('SELECT DISTINCT name FROM kv ORDER BY name')).rows.map((r) => r.name.toString());
      } finally {
        await c.end();
      }
    }
    const c = await mysql.createConnection({ host: s.host, port: s.port, user: s.user, password: s.password, database: s.database });
    try {
      const [rows] = await c.query('SELECT DISTINCT name FROM kv ORDER BY name');
      return (rows as { name: Buffer }[]).map((r) => r.name.toString());
    } finally {
      await c.end();
    }
  }

  /** The root's apply reports (ConfigMaps in its own store), carried to the API server as kube-apiserver serves them. */
  async function syncReports(): Promise<void> {
    const got = await client.range({ key: b('/registry/configmaps/'), range_end: b('/registry/configmaps0') });
    for (const kv of got.kvs) {
      const obj = JSON.parse(kv.value.toString('utf8'));
      if (!obj.metadata?.labels?.[REPORT_FOR_LABEL] || !parseReport(obj)) continue;
      const existing = fake.get('configmaps', obj.metadata.namespace, obj.metadata.name);
      if (!existing) fake.create({ ...obj, metadata: { ...obj.metadata, uid: undefined, creationTimestamp: undefined } });
      else if (JSON.stringify(existing.data) !== JSON.stringify(obj.data)) fake.update({ ...existing, data: obj.data });
    }
  }

  before(async () => {
    run = await runStack({ projectFile: path.join(REPO, 'Pulumi.yaml'), stackFile: path.join(REPO, 'stacks/platform/Pulumi.prod.yaml'), program: path.join(REPO, 'stacks/platform/index.ts'), stack: 'prod' });
    dir = mkdtempSync(path.join(os.tmpdir(), 'hk-prodlayers-'));
    const certDir = path.join(dir, 'cert-manager');
    mkdirSync(certDir);
    issued = issueCertificates(
      certDir,
      [...run.h.ofType('kubernetes:cert-manager.io/v1:Certificate'), ...run.h.ofType('kubernetes:cert-manager.io/v1:Issuer')].map((r) => r.plain),
    );
    etcd = await Etcd.start();
    for (const layer of LAYERS) {
      const deployment = rendered('kubernetes:apps/v1:Deployment', `harikube-${layer}`);
      const podDir = path.join(dir, layer);
      const container = deployment.spec.template.spec.containers[0];
      const mounts = new Map<string, string>(container.volumeMounts.map((m: any) => [m.mountPath, path.join(podDir, `volume-${m.name}`)]));
      pods.set(layer, { layer, deployment, dir: podDir, mounts, port: await freePort(), metricsPort: await freePort(), args: [], env: {} });
    }
    for (const layer of LAYERS) await preparePod(pods.get(layer)!);
    for (const layer of LAYERS) await startPod(pods.get(layer)!);

    const api = issued.get('harikube-apiserver-client')!;
    client = new EtcdClient(`127.0.0.1:${pods.get('root')!.port}`, grpc.credentials.createSsl(api['ca.crt'], api['tls.key'], api['tls.crt']));

    // The root's own rules: the rendered TopologyConfig, merged by the real operator. Its endpoint is sealed
    // with the stack's key; the substitution happens inside the seal, with that same key.
    fake = await FakeKube.start();
    const keySecret = rendered('kubernetes:core/v1:Secret', 'topology-endpoint-keys');
    fake.create(keySecret);
    const keys = keysFromSecretData(Object.fromEntries(Object.entries<string>(keySecret.data).map(([k, v]) => [k, Buffer.from(v, 'base64')])), 'topology-endpoint-keys');
    const tc = structuredClone(rendered('kubernetes:harikube.info/v1:TopologyConfig', 'harikube-root-platform'));
    assert.equal(tc.spec.backends.length, 1, 'the root has one platform rule (kube-system)');
    for (const backend of tc.spec.backends) {
      const opened = openEndpoint(backend.endpoint, keys);
      const local = localize('root', opened.plaintext);
      backend.endpoint = sealEndpoint(local, keys.find((k) => k.name === opened.keyName)!.key);
      sealed = { rendered: opened.plaintext, local };
      backend.backendTLS = Object.fromEntries(Object.entries<unknown>(backend.backendTLS ?? {}).map(([k, v]) => [k, typeof v === 'string' ? localize('root', v) : v]));
    }
    fake.create(tc);
    const operatorArgs: string[] = rendered('kubernetes:apps/v1:Deployment', 'harikube-topology-operator').spec.template.spec.containers[0].args;
    const secretNamespaces = operatorArgs.find((a) => a.startsWith('--secret-namespaces='))?.slice('--secret-namespaces='.length).split(',');
    // as the rendered operator runs: its namespaces, and Active only once the middleware applied the rules (the default)
    operator = startOperator(fake, { secretNamespaces, waitForMiddleware: !operatorArgs.includes('--wait-for-middleware=false') });

    // What kube-apiserver does when the operator writes the Secret: stores it in the root, under its key.
    const [targetNs, targetName] = tc.spec.targetSecret.split('/');
    const secret = await fake.until('the operator to write the topology Secret', () => fake.get('secrets', targetNs, targetName));
    await client.put({
      key: b(`/registry/secrets/${targetNs}/${targetName}`),
      value: encodeStoredSecret({
        name: secret.metadata.name,
        namespace: secret.metadata.namespace,
        uid: secret.metadata.uid,
        labels: secret.metadata.labels,
        annotations: secret.metadata.annotations,
        type: secret.type,
        data: Object.fromEntries(Object.entries<string>(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
      }),
    });
    const root = pods.get('root')!.proc!;
    const status = await waitUntil(
      `the root to apply its rules (TopologyConfig ${tc.metadata.namespace}/${tc.metadata.name} Active or Failed)`,
      async () => {
        await syncReports();
        const s = statusOf(fake, tc.metadata.namespace, tc.metadata.name);
        return s?.deployStatus === 'Active' || s?.deployStatus === 'Failed' ? s : undefined;
      },
      { timeoutMs: APPLY_TIMEOUT_MS, intervalMs: 200 },
    ).catch((err: Error) => {
      throw root.failure(err.message);
    });
    if (status.deployStatus !== 'Active') throw root.failure(`the root refused its own topology: ${status.deployStatusReason}`);
  });

  after(async () => {
    client?.close();
    for (const layer of [...LAYERS].reverse()) await pods.get(layer)?.proc?.stop();
    await operator?.stop();
    await fake?.stop();
    await etcd?.destroy();
    const server = (url: string) => parseEndpoint(url) as SqlServerEndpoint;
    if (scratch.postgres.size) {
      const s = server(POSTGRES_URL);
      const c = new pg.Client({ host: s.host, port: s.port, user: s.user, password: s.password, database: s.database });
      await c.connect();
      for (const db of scratch.postgres) await c.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
      await c.end();
    }
    if (scratch.mysql.size) {
      const s = server(MYSQL_URL);
      const c = await mysql.createConnection({ host: s.host, port: s.port, user: s.user, password: s.password });
      for (const db of scratch.mysql) await c.query(`DROP DATABASE IF EXISTS \`${db}\``);
      await c.end();
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('each layer starts with its Deployment\'s exact arguments and environment; only cluster names, ports and paths differ', async () => {
    for (const layer of LAYERS) {
      const pod = pods.get(layer)!;
      const c = pod.deployment.spec.template.spec.containers[0];
      assert.ok(pod.proc!.running, `${layer} is running`);
      // argument by argument: the same flags, with this machine's addresses and paths
      assert.deepEqual(
        pod.args.map((a) => a.split('=')[0]),
        c.args.map((a: string) => a.split('=')[0]),
      );
      assert.deepEqual(Object.keys(pod.env), c.env.map((e: any) => e.name));
    }
    // the lower layer leaves compaction to the root (README, "Guarantees across databases and layers")
    assert.ok(pods.get('kube-system')!.args.includes('--compact-interval=0'));
    assert.ok(!pods.get('root')!.args.some((a) => a.startsWith('--compact-interval')));
    // TLS with client certificates on both, and the environment as the pods get it
    for (const layer of LAYERS) assert.ok(pods.get(layer)!.args.some((a) => a.startsWith('--server-ca-file=')), `${layer} requires client certificates`);
    const root = pods.get('root')!.env;
    const kubeSystem = pods.get('kube-system')!.env;
    assert.equal(root.TOPOLOGY_CONFIG, 'secret://harikube/topology-config');
    assert.match(root.HARIKUBE_ENDPOINT!, new RegExp(`^postgres://postgres@127\\.0\\.0\\.1:5432/${dbPrefix}_harikube$`));
    assert.equal(kubeSystem.TOPOLOGY_CONFIG, `file://${pods.get('kube-system')!.mounts.get('/etc/harikube/topology')}/topology.yaml`);
    assert.equal(kubeSystem.HARIKUBE_ENDPOINT, `sqlite://${pods.get('kube-system')!.mounts.get('/var/lib/harikube')}/default.db`);
    // the root's sealed rule endpoint: the kube-system Service, substituted by its loopback address
    assert.deepEqual(sealed, { rendered: 'https://harikube-kube-system.harikube.svc:2379', local: `https://127.0.0.1:${pods.get('kube-system')!.port}` });
    assert.equal(await metricValue({ metricsAddress: `127.0.0.1:${pods.get('kube-system')!.metricsPort}` }, 'harikube_topology_rules'), 4);
    assert.equal(await metricValue({ metricsAddress: `127.0.0.1:${pods.get('root')!.metricsPort}` }, 'harikube_topology_rules'), 1);
  });

  const KEYS = {
    '/registry/pods/kube-system/x': 'kube-system rule pods',
    '/registry/secrets/kube-system/x': 'kube-system rule secrets',
    '/registry/configmaps/kube-system/x': 'kube-system rule configmaps',
    '/registry/deployments/kube-system/x': 'kube-system rule deployments',
    '/registry/pods/default/x': 'root default backend',
  } as const;
  const revisions = new Map<string, string>();

  it('keys written through the root are where the rules say, and nowhere else', async () => {
    for (const key of Object.keys(KEYS)) revisions.set(key, (await client.put({ key: b(key), value: b(`value of ${key}`) })).header.revision);

    // every store a layer was given, by what the layer was told
    const kubeSystem = pods.get('kube-system')!;
    const topology = parseYaml(readFileSync(kubeSystem.env.TOPOLOGY_CONFIG!.replace(/^file:\/\//, ''), 'utf8')) as { backends: Array<{ name: string; endpoint: string }> };
    const stores: Record<string, string> = {
      'root default backend': pods.get('root')!.env.HARIKUBE_ENDPOINT!,
      'kube-system default backend': kubeSystem.env.HARIKUBE_ENDPOINT!,
      ...Object.fromEntries(topology.backends.map((r) => [`kube-system rule ${r.name}`, r.endpoint])),
    };
    assert.deepEqual(
      Object.values(stores).map((e) => parseEndpoint(e).kind),
      ['postgres', 'sqlite', 'etcd', 'mysql', 'postgres', 'sqlite'],
      'root on PostgreSQL; kube-system on SQLite with pods/secrets/configmaps/deployments on etcd/MariaDB/PostgreSQL/SQLite',
    );
    const held: Record<string, string[]> = {};
    for (const [store, endpoint] of Object.entries(stores)) held[store] = await keysAt(endpoint);
    const where = (key: string) => Object.keys(stores).filter((s) => held[s]!.includes(key));
    assert.deepEqual(
      Object.fromEntries(Object.keys(KEYS).map((k) => [k, where(k)])),
      Object.fromEntries(Object.entries(KEYS).map(([k, store]) => [k, [store]])),
    );
  });

  it('reads, a snapshot and a watch through the root see the keys with the root\'s revisions', async () => {
    assert.equal(revisions.size, 5, 'runs after the writes');
    const ours = (kvs: T.KeyValue[]) => kvs.filter((kv) => kv.key.toString() in KEYS).map((kv) => [kv.key.toString(), kv.value.toString(), kv.mod_revision, kv.create_revision]);
    const expected = [...revisions].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, rev]) => [k, `value of ${k}`, rev, rev]);
    const all = await client.range({ key: b('/registry/'), range_end: b('/registry0') });
    assert.deepEqual(ours(all.kvs), expected);
    // a list pinned to the revision of the third write sees exactly the first three, across both layers
    const third = [...revisions.values()][2]!;
    const snapshot = await client.range({ key: b('/registry/'), range_end: b('/registry0'), revision: third });
    assert.deepEqual(ours(snapshot.kvs), expected.filter(([, , rev]) => BigInt(rev as string) <= BigInt(third)));

    const watch = client.watch();
    const first = [...revisions.values()][0]!;
    const id = (await watch.create({ key: b('/registry/'), range_end: b('/registry0'), start_revision: first })).watch_id;
    const live = '/registry/configmaps/kube-system/y';
    const events = (n: number) => (responses: T.WatchResponse[]) => {
      const evs = responses.filter((r) => r.watch_id === id).flatMap((r) => r.events).filter((e) => e.kv!.key.toString() in KEYS || e.kv!.key.toString() === live);
      return evs.length >= n ? evs : undefined;
    };
    await watch.waitFor('the five writes, from history', events(5));
    const liveRevision = (await client.put({ key: b(live), value: b('live') })).header.revision;
    const seen = await watch.waitFor('the live write', events(6));
    assert.deepEqual(
      seen.map((e) => [e.type, e.kv!.key.toString(), e.kv!.mod_revision]),
      [...[...revisions].map(([k, rev]) => ['Put', k, rev]), ['Put', live, liveRevision]],
      'each write once, in revision order, with the revision the put returned',
    );
    watch.close();
  });
});

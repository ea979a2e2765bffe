/**
 * Our stacks through the real Pulumi engine (CLI and Kubernetes provider built from the Go module proxy by
 * tools/build.sh), with a local state backend and the passphrase secrets provider, into a real kube-apiserver
 * whose storage is the middleware. Nothing is downloaded (harness.ts records any attempt).
 *
 * 1. `pulumi up` of the dev stack: every object is accepted; the Deployment's command, environment and mounted
 *    topology, the routing ConfigMap and the Secret read back; then the middleware runs locally with exactly
 *    that command, environment and topology and serves and routes as declared, into a real PostgreSQL server
 *    that stands in for the CloudNativePG cluster (cnpg-standin.ts, reached by its Service name).
 * 2. A routing change (a rule moved to another database): `pulumi preview --diff` shows the rule with its old
 *    and new backend, no password, no ciphertext; the Deployment is not touched, the ConfigMap and Secret are
 *    updated in place (and without the stack's mutable settings replaced, still without the Deployment).
 * 3. (the application stack: app-stack.test.ts)
 * 4. A second `pulumi up` with no change changes nothing; `pulumi destroy` leaves nothing of ours behind.
 *
 * The cluster has no controller manager, nodes or third-party operators: cluster-standin.ts reports what they
 * would (Deployments available, claims bound, Services with endpoints, CloudNativePG clusters ready), and the
 * stack's own config turns the operators' Helm charts off (`harikube:databaseOperators: false`) while the test
 * installs their CRDs (third-party-crds.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { ServerProcess } from '../support/child.js';
import { freePort } from '../support/env.js';
import { KubeStack, storedKeys } from '../support/kube-stack.js';
import { waitUntil } from '../support/wait.js';
import { ClusterStandIn, kube, listAll, type KubeAccess } from './cluster-standin.js';
import { CnpgStandIn, cnpgStandInSkip } from './cnpg-standin.js';
import { projectFile, PulumiHarness, pulumiSkip, REPO_ROOT } from './harness.js';
import { podCommand, runLocalPod } from './local-pod.js';
import { CNPG_CRDS, installCrds } from './third-party-crds.js';

const PLATFORM_PROGRAM = path.join(REPO_ROOT, 'stacks', 'platform', 'index.ts');
const DEV_CONFIG = path.join(REPO_ROOT, 'stacks', 'platform', 'Pulumi.dev.yaml');
const CLUSTER_DNS = path.join(REPO_ROOT, 'test', 'pulumi', 'cluster-dns.ts');
const NS = 'harikube';
const LAYER = 'harikube-root';

/**
 * The dev stack's own file, with the operators' charts turned off by the stack's config, and without the
 * TopologyConfig operator: the root layer then reads the topology Pulumi compiles (ConfigMap + Secret), the
 * path tested here.
 */
function devConfig(edit: (config: Record<string, any>) => void = () => {}): string {
  const doc = parseYaml(readFileSync(DEV_CONFIG, 'utf8')) as { config: Record<string, any> };
  doc.config['harikube:databaseOperators'] = false;
  doc.config['harikube:topologyOperator'] = false;
  edit(doc.config);
  return stringifyYaml(doc);
}

describe('Pulumi: the platform dev stack on a real kube-apiserver', { skip: pulumiSkip() || cnpgStandInSkip() }, () => {
  let cluster: KubeStack;
  let access: KubeAccess;
  let standIn: ClusterStandIn;
  let cnpg: CnpgStandIn;
  let p: PulumiHarness;
  let workDir: string;
  let password = '';
  const up = (extra: { expectNoChanges?: boolean } = {}) => p.ok({ op: 'up', workDir, stack: 'dev', program: PLATFORM_PROGRAM, ...extra });
  const get = async (apiPath: string) => {
    const r = await kube(access, 'GET', apiPath);
    assert.equal(r.status, 200, `GET ${apiPath}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    return r.body;
  };

  before(async () => {
    cluster = await KubeStack.start('sqlite', { apiServerArgs: ['--enable-garbage-collector=false'] });
    access = { url: cluster.api.url, token: cluster.api.token, caPem: cluster.api.caPem };
    await installCrds(access, CNPG_CRDS);
    cnpg = new CnpgStandIn(access);
    standIn = new ClusterStandIn(access, cnpg);
    standIn.start();
    p = await PulumiHarness.create(cluster.api.kubeconfigPath);
    workDir = p.project('platform', {
      'Pulumi.yaml': projectFile(path.join(REPO_ROOT, 'Pulumi.yaml')),
      'stacks/platform/Pulumi.dev.yaml': devConfig(),
    });
  });

  after(async () => {
    await standIn?.stop();
    await p?.dispose();
    await cluster?.stop();
    await cnpg?.stop();
  });

  it('1. pulumi up of the dev stack: every object accepted, read back as declared', async () => {
    const r = await up();
    assert.equal(r.changes?.create, Object.values(r.changes ?? {}).reduce((a, b) => a + b, 0), `only creates: ${JSON.stringify(r.changes)}`);

    const deployment = await get(`/apis/apps/v1/namespaces/${NS}/deployments/${LAYER}`);
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0];
    assert.equal(container.image, 'harikube:dev');
    assert.deepEqual(container.args, ['serve', '--listen-address=0.0.0.0:2379', '--metrics-bind-address=:8080', '--log-format=json']);
    const env = Object.fromEntries(container.env.map((e: any) => [e.name, e]));
    assert.deepEqual(env.HARIKUBE_ENDPOINT.valueFrom.secretKeyRef, { name: `${LAYER}-topology`, key: 'default-endpoint' });
    assert.equal(env.TOPOLOGY_CONFIG.value, 'file:///etc/harikube/topology/topology.yaml');
    const topologyMount = container.volumeMounts.find((m: any) => m.mountPath === '/etc/harikube/topology');
    assert.equal(pod.volumes.find((v: any) => v.name === topologyMount.name).secret.secretName, `${LAYER}-topology`);
    assert.equal(pod.volumes.find((v: any) => v.name === 'data').persistentVolumeClaim.claimName, `${LAYER}-data`);

    const routing = parseYaml((await get(`/api/v1/namespaces/${NS}/configmaps/${LAYER}-routing`)).data['routing.yaml']);
    assert.deepEqual(
      routing.rules.map((rule: any) => [rule.name, rule.match, rule.backend.type, rule.backend.target]),
      [['configmaps', { prefix: { prefix: 'configmaps' } }, 'postgres', 'postgres/main/configmaps']],
    );
    assert.deepEqual(r.outputs?.routing?.value, { root: routing }, 'the stack output is the ConfigMap');

    const secret = await get(`/api/v1/namespaces/${NS}/secrets/${LAYER}-topology`);
    const data = Object.fromEntries(Object.entries(secret.data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
    assert.equal(data['default-endpoint'], 'sqlite:///var/lib/harikube/default.db');
    const document = parseYaml(data['topology.yaml']!);
    const endpoint = new URL(document.backends[0].endpoint);
    assert.equal(`${endpoint.protocol}//${endpoint.username}@${endpoint.host}${endpoint.pathname}`, 'postgres://harikube@harikube-pg-main-rw.harikube.svc:5432/configmaps');
    password = decodeURIComponent(endpoint.password);
    assert.equal(password.length, 32);
    // The same password in the basic-auth Secret CloudNativePG bootstraps the role from; nowhere in plaintext config.
    const owner = await get(`/api/v1/namespaces/${NS}/secrets/harikube-pg-main-owner`);
    assert.equal(Buffer.from(owner.data.password, 'base64').toString(), password);
    assert.ok(!JSON.stringify(deployment).includes(password) && !JSON.stringify(routing).includes(password));
    const cnpg = await get(`/apis/postgresql.cnpg.io/v1/namespaces/${NS}/clusters/harikube-pg-main`);
    assert.equal(cnpg.spec.bootstrap.initdb.secret.name, 'harikube-pg-main-owner');
    const db = await get(`/apis/postgresql.cnpg.io/v1/namespaces/${NS}/databases/harikube-pg-main-configmaps`);
    assert.deepEqual([db.spec.name, db.spec.owner, db.spec.databaseReclaimPolicy], ['configmaps', 'harikube', 'retain']);
    assert.deepEqual(p.externalRequests, [], 'nothing was fetched from the network');
  });

  it('1b. the middleware runs with exactly that command, environment and topology, and routes as declared', async () => {
    // The container's paths become temp dirs and its binds loopback ports: the only substitutions. The
    // PostgreSQL cluster is a real server (cnpg-standin.ts) reached by its Service name (cluster-dns.ts) with
    // the password the stack generated.
    const deployment = await get(`/apis/apps/v1/namespaces/${NS}/deployments/${LAYER}`);
    const root = mkdtempSync(path.join(os.tmpdir(), 'hk-pod-'));
    const paths: Record<string, string> = { '/var/lib/harikube': path.join(root, 'data'), '/etc/harikube/topology': path.join(root, 'topology'), '/var/run/harikube/topology-tls': path.join(root, 'topology-tls'), '/tmp': path.join(root, 'tmp') };
    for (const dir of Object.values(paths)) mkdirSync(dir, { recursive: true });
    const port = await freePort();
    const metrics = await freePort();
    let middleware: ServerProcess | undefined;
    try {
      const command = await podCommand({
        access,
        deployment,
        podName: `${LAYER}-local`,
        paths,
        rewriteArg: (a) => (a === '--listen-address=0.0.0.0:2379' ? `--listen-address=127.0.0.1:${port}` : a === '--metrics-bind-address=:8080' ? `--metrics-bind-address=127.0.0.1:${metrics}` : a),
        extraEnv: { HARIKUBE_TEST_CLUSTER_DNS: cnpg.dnsFile, TMPDIR: paths['/tmp']! },
      });
      assert.equal(readFileSync(path.join(paths['/etc/harikube/topology']!, 'topology.yaml'), 'utf8').match(/@([^/]+)\//)?.[1], 'harikube-pg-main-rw.harikube.svc:5432', 'the mounted topology names the Service');
      middleware = await runLocalPod('middleware as deployed', command, ['--import', CLUSTER_DNS], async () => (await fetch(`http://127.0.0.1:${metrics}/readyz`)).status === 200);

      const client = new Etcd3({ hosts: `http://127.0.0.1:${port}` });
      try {
        await client.put('/registry/configmaps/default/routed').value('to postgres');
        await client.put('/registry/secrets/default/unrouted').value('to the default backend');
        assert.equal(await client.get('/registry/configmaps/default/routed').string(), 'to postgres');
      } finally {
        client.close();
      }
      assert.deepEqual(await cnpg.storedKeys(NS, 'harikube-pg-main', 'configmaps'), ['/registry/configmaps/default/routed']);
      const defaults = await storedKeys(`sqlite://${paths['/var/lib/harikube']}/default.db`);
      assert.ok(defaults.includes('/registry/secrets/default/unrouted') && !defaults.includes('/registry/configmaps/default/routed'), defaults.join(','));
    } finally {
      await middleware?.stop();
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('2. a routing change previewed with `pulumi preview --diff` reads as the rule, its old and new backend', async () => {
    p.project('platform', {
      'stacks/platform/Pulumi.dev.yaml': devConfig((c) => {
        c['harikube:layers'].root.rules[0].backend = { sqlite: 'configmaps.db' };
      }),
    });
    const r = await p.ok({ op: 'preview', workDir, stack: 'dev', program: PLATFORM_PROGRAM, diff: true });
    writeFileSync(path.join(p.dir, 'platform-preview.txt'), r.stdout);
    const out = r.stdout;
    assert.match(out, /name\s*:\s*"configmaps"/);
    assert.match(out, /postgres\/main\/configmaps/);
    assert.match(out, /sqlite\/root\/configmaps\.db/);
    assert.ok(!out.includes(password), 'the preview shows the password');
    // issue 15: the layer's Deployment is not touched (the middleware hot-reloads the mounted topology), and
    // with the stack's kubernetes:enableConfigMapMutable/enableSecretMutable the ConfigMap and the Secret
    // are updated in place, not deleted and created
    assert.doesNotMatch(out, /kubernetes:apps\/v1:Deployment: \(/, `the routing change touches the Deployment:\n${out}`);
    assert.match(out, /kubernetes:core\/v1:ConfigMap: \(update\)/);
    assert.match(out, /kubernetes:core\/v1:Secret: \(update\)/);
    assert.ok(!/[A-Za-z0-9+/]{40,}={0,2}/.test(out.replace(/[0-9a-f]{64}/g, '')), `ciphertext-like text in the preview:\n${out}`);
    console.log(out);

    // A stack without those settings (the provider's default): the ConfigMap and the Secret are replaced
    // (deleted and created), and still the Deployment is not (it names the Secret by a plain string, so the
    // engine does not drag it into the Secret's replacement)
    p.project('platform', {
      'stacks/platform/Pulumi.dev.yaml': devConfig((c) => {
        c['harikube:layers'].root.rules[0].backend = { sqlite: 'configmaps.db' };
        delete c['kubernetes:enableConfigMapMutable'];
        delete c['kubernetes:enableSecretMutable'];
      }),
    });
    const immutable = (await p.ok({ op: 'preview', workDir, stack: 'dev', program: PLATFORM_PROGRAM, diff: true })).stdout;
    assert.match(immutable, /\+-kubernetes:core\/v1:Secret: \(replace\)/, immutable);
    assert.doesNotMatch(immutable, /kubernetes:apps\/v1:Deployment: \(/, `the Secret's replacement drags the Deployment along:\n${immutable}`);
  });

  it('4. a second `pulumi up` with no change changes nothing; destroy leaves nothing of ours', async () => {
    p.project('platform', { 'stacks/platform/Pulumi.dev.yaml': devConfig() });
    const again = await p.ok({ op: 'preview', workDir, stack: 'dev', program: PLATFORM_PROGRAM, diff: true, expectNoChanges: true });
    assert.deepEqual(Object.keys(again.changes ?? {}), ['same'], again.stdout);
    await up({ expectNoChanges: true });

    const d = await p.ok({ op: 'destroy', workDir, stack: 'dev', program: PLATFORM_PROGRAM });
    assert.ok((d.changes?.delete ?? 0) > 0, JSON.stringify(d.changes));
    await waitUntil('the namespace to be gone', async () => ((await kube(access, 'GET', `/api/v1/namespaces/${NS}`)).status === 404 ? true : undefined), { timeoutMs: 60_000, intervalMs: 250 });
    // What destroy left in the namespace for its deletion to remove: only the data volume, which the stack
    // retains on purpose (retainOnDelete: deleting the stack must not delete the layer's SQLite files).
    assert.deepEqual(standIn.namespaceLeftovers, [`PersistentVolumeClaim ${NS}/${LAYER}-data`]);
    const ours = (o: { metadata: { namespace?: string; name: string; labels?: Record<string, string> } }) =>
      o.metadata.namespace === NS || o.metadata.name === NS || o.metadata.labels?.['app.kubernetes.io/part-of'] === 'harikube' || o.metadata.labels?.['app.kubernetes.io/managed-by'] === 'pulumi';
    assert.deepEqual((await listAll(access, ours)).map((o) => `${o.kind} ${o.namespace ?? ''}/${o.name}`), [], 'objects of ours left behind');
    assert.deepEqual(p.externalRequests, [], 'nothing was fetched from the network');
  });
});

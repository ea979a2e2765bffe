/**
 * 3. The application stack (stacks/app-example) through the real Pulumi engine, against the outputs of the
 * platform stack (StackReference on the same local backend), with the whole routing chain running for real:
 *
 *   platform `pulumi up` -> the root layer's Deployment (TOPOLOGY_CONFIG=secret://harikube/topology-config)
 *   and the operator's Deployment, both run locally with their declared command and environment; the root
 *   layer takes over the cluster's storage (it is the storage the API server runs on, as in production:
 *   `secret://` reads the Secret from the layer's own store) -> the app's `pulumi up` creates its
 *   TopologyConfig -> the operator merges it into the Secret -> the root layer applies the rules, opening the
 *   team's PostgreSQL databases, and writes its apply report into its own store -> the operator turns the
 *   TopologyConfig Ready -> Pulumi goes on (`pulumi.com/waitFor: condition=Ready`), and what the team creates
 *   from then on is stored where the rules say (in position order: the platform's own rule, at 1, first).
 *
 * Stand-ins for what cannot run here (no kubelet, controllers or CloudNativePG): cluster-standin.ts reports
 * Deployments available and the like; cnpg-standin.ts gives each CloudNativePG Cluster a real PostgreSQL
 * server (owner, password and databases as declared) on its own loopback address; cluster-dns.ts, loaded into
 * the locally run root layer, resolves the Clusters' Service names to those addresses.
 *
 * Then a routing change of the app team (a rule moved to another database) is previewed with
 * `pulumi preview --diff`: the reviewer sees the rule and its old and new backend, not ciphertext. Last,
 * destroy of both stacks.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { documentDigest, parseReport, REPORT_FOR_LABEL } from '../../middleware/src/topology/apply-report.js';
import type { ServerProcess } from '../support/child.js';
import { freePort } from '../support/env.js';
import { KubeApiServer } from '../support/kube-apiserver.js';
import { storedKeys } from '../support/kube-stack.js';
import { Middleware } from '../support/middleware.js';
import { waitUntil } from '../support/wait.js';
import { ClusterStandIn, kube } from './cluster-standin.js';
import { CnpgStandIn, cnpgStandInSkip } from './cnpg-standin.js';
import { projectFile, PulumiHarness, pulumiSkip, REPO_ROOT } from './harness.js';
import { podCommand, runLocalPod } from './local-pod.js';
import { CNPG_CRDS, installCrds } from './third-party-crds.js';

const PLATFORM_PROGRAM = path.join(REPO_ROOT, 'stacks', 'platform', 'index.ts');
const APP_DIR = path.join(REPO_ROOT, 'stacks', 'app-example');
const APP_PROGRAM = path.join(APP_DIR, 'index.ts');
const CLUSTER_DNS = path.join(REPO_ROOT, 'test', 'pulumi', 'cluster-dns.ts');
const NS = 'harikube';
const TARGET = `${NS}/topology-config`;
/** The app's namespaces: routed (created after its rules are live), and where its database and TopologyConfig live. */
const APP_NS = 'shop';
const APP_SYSTEM_NS = 'shop-system';

function platformConfig(): string {
  const doc = parseYaml(readFileSync(path.join(REPO_ROOT, 'stacks', 'platform', 'Pulumi.dev.yaml'), 'utf8')) as { config: Record<string, unknown> };
  // the operators' Helm charts cannot be fetched here: off by the stack's own config (the test installs CRDs)
  doc.config['harikube:databaseOperators'] = false;
  return stringifyYaml(doc);
}

function appConfig(): string {
  const doc = parseYaml(readFileSync(path.join(APP_DIR, 'Pulumi.dev.yaml'), 'utf8')) as { config: Record<string, unknown> };
  doc.config['harikube-app-example:platformStack'] = 'organization/harikube/dev';
  return stringifyYaml(doc);
}

const decode = (v: string) => Buffer.from(v, 'base64').toString('utf8');

describe('Pulumi: an application stack against the platform stack\'s outputs, routed by a middleware', { skip: pulumiSkip() || cnpgStandInSkip() }, () => {
  // The pods' directories: the root layer's data volume holds the cluster's storage from the start.
  const podRoot = mkdtempSync(path.join(os.tmpdir(), 'hk-app-stack-'));
  const dataDir = path.join(podRoot, 'data');
  let bootstrap: Middleware;
  let api: KubeApiServer;
  let cnpg: CnpgStandIn;
  let standIn: ClusterStandIn;
  let p: PulumiHarness;
  let platformDir: string;
  let appDir: string;
  let rootLayer: ServerProcess | undefined;
  let operator: ServerProcess | undefined;
  const get = async (apiPath: string) => {
    const r = await kube(api, 'GET', apiPath);
    assert.equal(r.status, 200, `GET ${apiPath}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    return r.body;
  };
  const statusOf = async (namespace: string, name: string) => (await get(`/apis/harikube.info/v1/namespaces/${namespace}/topologyconfigs/${name}`)).status ?? {};
  let rootMetrics = 0;
  const migrations = async () => (await fetch(`http://127.0.0.1:${rootMetrics}/migrations`)).json() as Promise<{ active: boolean; sources: Array<{ source: string; phase: string; lastError?: string }> }>;
  /** Waits until the root layer has no key left to move (GET /migrations). */
  const migrationsDone = () =>
    waitUntil('the root layer\'s migrations to finish', async () => ((await migrations()).active ? undefined : true), { timeoutMs: 120_000, intervalMs: 500 }).catch(async (err) =>
      assert.fail(`${(err as Error).message}\n${await diagnostics()}`),
    );
  const diagnostics = async () =>
    [
      `--- root layer /migrations ---\n${rootLayer ? JSON.stringify(await migrations().catch((e) => String(e))) : '(not started)'}`,
      `--- root layer ---\n${rootLayer?.tail() ?? '(not started)'}`,
      `--- operator ---\n${operator?.tail() ?? '(not started)'}`,
      `--- PostgreSQL stand-in ---\n${cnpg?.actions.join('\n')}`,
      `--- cluster stand-in errors ---\n${standIn?.errors.slice(-5).join('\n')}`,
    ].join('\n');

  before(async () => {
    mkdirSync(dataDir);
    // The cluster's storage until the platform's root layer takes it over: a middleware on the same file.
    bootstrap = await Middleware.start({ endpoint: `sqlite://${dataDir}/default.db` });
    api = await KubeApiServer.start({ etcd: bootstrap.address, label: 'on the root layer\'s data', extraArgs: ['--enable-garbage-collector=false'] });
    await installCrds(api, CNPG_CRDS);
    cnpg = new CnpgStandIn(api);
    standIn = new ClusterStandIn(api, cnpg);
    standIn.start();
    p = await PulumiHarness.create(api.kubeconfigPath);
    platformDir = p.project('platform', {
      'Pulumi.yaml': projectFile(path.join(REPO_ROOT, 'Pulumi.yaml')),
      'stacks/platform/Pulumi.dev.yaml': platformConfig(),
    });
    appDir = p.project('app', {
      'Pulumi.yaml': projectFile(path.join(APP_DIR, 'Pulumi.yaml')),
      'Pulumi.dev.yaml': appConfig(),
    });
  });

  after(async () => {
    await operator?.stop();
    await standIn?.stop();
    await p?.dispose();
    await api?.destroy();
    await rootLayer?.stop();
    await bootstrap?.stop();
    await cnpg?.stop();
    rmSync(podRoot, { recursive: true, force: true });
  });

  it('the platform: pulumi up, its root layer reads the operator\'s Secret', async () => {
    const r = await p.ok({ op: 'up', workDir: platformDir, stack: 'dev', program: PLATFORM_PROGRAM });
    assert.equal(r.outputs?.targetSecret?.value, TARGET);
    assert.equal(r.outputs?.decryptSecret?.value, `${NS}/topology-endpoint-keys`);
    assert.equal(r.outputs?.topologyEncryptionKey?.secret, true);
    await get('/apis/apiextensions.k8s.io/v1/customresourcedefinitions/topologyconfigs.harikube.info');
    const container = (await get(`/apis/apps/v1/namespaces/${NS}/deployments/harikube-root`)).spec.template.spec.containers[0];
    const env = Object.fromEntries(container.env.map((e: { name: string }) => [e.name, e]));
    assert.equal(env.TOPOLOGY_CONFIG.value, `secret://${TARGET}`);
    // The platform's own rule is a TopologyConfig at position 1, merged like any application's.
    const platformRules = await get(`/apis/harikube.info/v1/namespaces/${NS}/topologyconfigs/harikube-root-platform`);
    assert.equal(platformRules.spec.position, 1);
    assert.deepEqual(platformRules.spec.backends.map((b: { name: string }) => b.name), ['configmaps']);
    assert.deepEqual(p.externalRequests, [], 'nothing was fetched from the network');
  });

  it('the root layer takes over the cluster\'s storage and the operator runs, both as their Deployments declare', async () => {
    const rootDeployment = await get(`/apis/apps/v1/namespaces/${NS}/deployments/harikube-root`);
    const metrics = await freePort();
    rootMetrics = metrics;
    const rootCommand = await podCommand({
      access: api,
      deployment: rootDeployment,
      podName: 'harikube-root-local',
      paths: { '/var/lib/harikube': dataDir, '/tmp': path.join(podRoot, 'tmp'), '/var/run/harikube/topology-tls': path.join(podRoot, 'topology-tls') },
      // the API server's --etcd-servers stays where it is: the layer takes over the bootstrap's address
      rewriteArg: (a) => (a === '--listen-address=0.0.0.0:2379' ? `--listen-address=${bootstrap.address}` : a === '--metrics-bind-address=:8080' ? `--metrics-bind-address=127.0.0.1:${metrics}` : a),
      extraEnv: { HARIKUBE_TEST_CLUSTER_DNS: cnpg.dnsFile, TMPDIR: path.join(podRoot, 'tmp') },
    });
    assert.equal(rootCommand.env.HARIKUBE_ENDPOINT, `sqlite://${dataDir}/default.db`, 'the default backend is the file the cluster already runs on');
    assert.equal(rootCommand.env.TOPOLOGY_CONFIG, `secret://${TARGET}`);

    const operatorDeployment = await get(`/apis/apps/v1/namespaces/${NS}/deployments/harikube-topology-operator`);
    const [health, operatorMetrics] = [await freePort(), await freePort()];
    const operatorCommand = await podCommand({
      access: api,
      deployment: operatorDeployment,
      podName: 'harikube-topology-operator-local',
      paths: { '/tmp': path.join(podRoot, 'operator-tmp') },
      rewriteArg: (a) =>
        a.startsWith('--health-probe-bind-address=') ? `--health-probe-bind-address=127.0.0.1:${health}` : a.startsWith('--metrics-bind-address=') ? `--metrics-bind-address=127.0.0.1:${operatorMetrics}` : a,
      // in the cluster it uses its ServiceAccount; here the test's kubeconfig
      extraArgs: ['--kubeconfig', api.kubeconfigPath],
      extraEnv: { TMPDIR: path.join(podRoot, 'operator-tmp') },
    });

    await bootstrap.stop();
    rootLayer = await runLocalPod('root layer as deployed', rootCommand, ['--import', CLUSTER_DNS], async () => (await fetch(`http://127.0.0.1:${metrics}/readyz`)).status === 200);
    await waitUntil('kube-apiserver to answer on the root layer', async () => ((await api.request('GET', '/readyz')).status === 200 ? true : undefined), { timeoutMs: 60_000, intervalMs: 250 });
    operator = await runLocalPod('operator as deployed', operatorCommand, [], async () => (await fetch(`http://127.0.0.1:${health}/readyz`)).status === 200);
  });

  it('the platform\'s own rule is applied by the root layer: the ConfigMaps stored before move to PostgreSQL', async () => {
    // kube-apiserver wrote ConfigMaps (kube-system/extension-apiserver-authentication, ...) before any rule
    // existed; the rule `configmaps` routes them to the platform's PostgreSQL, so the layer applies it at once
    // and moves them online.
    const status = await waitUntil('harikube/harikube-root-platform to be decided', async () => {
      const s = await statusOf(NS, 'harikube-root-platform');
      return s.deployStatus === 'Failed' || s.deployStatus === 'Active' ? s : undefined;
    }, { timeoutMs: 120_000, intervalMs: 500 }).catch(async (err) => assert.fail(`${(err as Error).message}\n${await diagnostics()}`));
    assert.equal(status.deployStatus, 'Active', `${JSON.stringify(status)}\n${await diagnostics()}`);
    assert.match(status.deployStatusReason, /^rules applied by middleware \S+ from Secret harikube\/topology-config as \S+/);
    await migrationsDone();
    const inPostgres = await cnpg.storedKeys(NS, 'harikube-pg-main', 'configmaps');
    assert.ok(inPostgres.includes('/registry/configmaps/kube-system/extension-apiserver-authentication'), `the platform's configmaps database holds ${inPostgres.join(', ')}`);
    const inDefault = await storedKeys(`sqlite://${dataDir}/default.db`);
    assert.deepEqual(inDefault.filter((k) => k.startsWith('/registry/configmaps/')), [], 'ConfigMaps left in the default backend');
    // served as before, now from PostgreSQL
    await get('/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication');
  });

  it('3. pulumi up of the application stack completes once its TopologyConfig is Ready; what the team creates then is routed', async () => {
    const r = await p.run({ op: 'up', workDir: appDir, stack: 'dev', program: APP_PROGRAM });
    assert.ok(r.ok, `pulumi up of the app failed: ${r.error}\n${r.stdout}\n${r.stderr}\n${await diagnostics()}`);
    const tc = await get(`/apis/harikube.info/v1/namespaces/${APP_SYSTEM_NS}/topologyconfigs/shop`);
    const ready = (tc.status?.conditions ?? []).find((c: { type: string }) => c.type === 'Ready');
    assert.equal(ready?.status, 'True', JSON.stringify(tc.status));
    assert.equal(tc.status.deployStatus, 'Active');
    assert.match(tc.status.deployStatusReason, /^rules applied by middleware \S+ from Secret harikube\/topology-config as \S+/);
    assert.equal(tc.spec.endpointDecryptSecret, `${NS}/topology-endpoint-keys`);
    assert.deepEqual(tc.spec.backends.map((b: { name: string }) => b.name), ['shop', 'shop-orders']);
    for (const b of tc.spec.backends) assert.ok(!b.endpoint.includes('postgres://'), 'endpoints are sealed in the TopologyConfig');
    // The stack's outputs: the sealed spec as applied (a secret output), and the readable routing.
    assert.equal(r.outputs?.topologyConfig?.secret, true);
    assert.deepEqual((r.outputs?.topologyConfig?.value as { backends: Array<{ endpoint: string }> }).backends.map((b) => b.endpoint), tc.spec.backends.map((b: { endpoint: string }) => b.endpoint));
    const routing = parseYaml(r.outputs?.routing?.value as string) as Array<{ name: string; backend: { type: string; location: string } }>;
    assert.deepEqual(routing.map((x) => [x.name, x.backend.type, x.backend.location]), [
      ['shop', 'postgres', `shop-db-rw.${APP_SYSTEM_NS}.svc:5432/shop`],
      ['shop-orders', 'postgres', `shop-db-rw.${APP_SYSTEM_NS}.svc:5432/orders`],
    ]);

    // The operator opened the sealed endpoints into the Secret the root layer reads ...
    const merged = await get(`/api/v1/namespaces/${NS}/secrets/topology-config`);
    const files = Object.fromEntries(Object.entries(merged.data as Record<string, string>).map(([k, v]) => [k, decode(v)]));
    const mine = Object.entries(files).find(([k]) => k.includes(`${APP_SYSTEM_NS}.shop`));
    assert.ok(mine, `no data key of ${APP_SYSTEM_NS}/shop in ${Object.keys(files).join(', ')}`);
    const doc = parseYaml(mine[1]);
    const endpoints = (doc.backends as Array<{ name: string; endpoint: string }>).map((b) => [b.name, new URL(b.endpoint).host + new URL(b.endpoint).pathname]);
    assert.deepEqual(endpoints, [['shop', `shop-db-rw.${APP_SYSTEM_NS}.svc:5432/shop`], ['shop-orders', `shop-db-rw.${APP_SYSTEM_NS}.svc:5432/orders`]]);
    const owner = await get(`/api/v1/namespaces/${APP_SYSTEM_NS}/secrets/shop-db-owner`);
    assert.equal(decodeURIComponent(new URL(doc.backends[0].endpoint).password), decode(owner.data.password));

    // ... which reported applying exactly that document (the report the operator turned Ready on).
    const reports = (await get(`/api/v1/namespaces/${NS}/configmaps?labelSelector=${encodeURIComponent(`${REPORT_FOR_LABEL}=topology-config`)}`)).items;
    assert.equal(reports.length, 1);
    const report = parseReport(reports[0])!;
    assert.equal(report.state, 'Applied');
    assert.equal(reports[0].metadata.name, `topology-config-applied-${report.middleware}`);
    assert.ok(report.applied!.documents.includes(documentDigest(Buffer.from(merged.data[mine[0]], 'base64'))), JSON.stringify(report));

    // Routed, in position order: the app's ConfigMap, created after Ready, went to the platform's configmaps
    // database (its rule, at position 1, comes before the app's at 10); a Secret of the team's namespace goes
    // to the team's database; neither stays in the root layer's default backend.
    await get(`/api/v1/namespaces/${APP_NS}/configmaps/shop-settings`);
    const created = await kube(api, 'POST', `/api/v1/namespaces/${APP_NS}/secrets`, { metadata: { name: 'after-ready' }, stringData: { k: 'v' } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const inShopDb = await cnpg.storedKeys(APP_SYSTEM_NS, 'shop-db', 'shop');
    assert.deepEqual(inShopDb, [`/registry/secrets/${APP_NS}/after-ready`]);
    const inPlatformDb = await cnpg.storedKeys(NS, 'harikube-pg-main', 'configmaps');
    assert.ok(inPlatformDb.includes(`/registry/configmaps/${APP_NS}/shop-settings`), `the platform's configmaps database holds ${inPlatformDb.join(', ')}`);
    const inDefault = await storedKeys(`sqlite://${dataDir}/default.db`);
    assert.deepEqual(inDefault.filter((k) => k.includes(`/${APP_NS}/`)), [], 'objects of the routed namespace in the default backend');
    assert.ok(inDefault.includes(`/registry/secrets/${APP_SYSTEM_NS}/shop-db-owner`), 'the team\'s database Secret is not routed (its namespace is not)');
    assert.deepEqual(p.externalRequests, [], 'nothing was fetched from the network');
  });

  it('3b. an app team\'s routing change previewed with `pulumi preview --diff` reads as the rule, its old and new backend', async () => {
    // The team edits its program: rule shop-orders moves from database `orders` to a new database `archive`.
    const program = p.program('app', APP_PROGRAM, (text) =>
      text.replace("databases: ['orders']", "databases: ['orders', 'archive']").replace("endpoint: db.endpointFor('orders')", "endpoint: db.endpointFor('archive')"),
    );
    const r = await p.ok({ op: 'preview', workDir: appDir, stack: 'dev', program, diff: true });
    writeFileSync(path.join(p.dir, 'app-preview.txt'), r.stdout);
    console.log(r.stdout);
    const out = r.stdout;
    assert.match(out, /shop-orders/);
    assert.match(out, new RegExp(`shop-db-rw\\.${APP_SYSTEM_NS}\\.svc:5432/orders`));
    assert.match(out, new RegExp(`shop-db-rw\\.${APP_SYSTEM_NS}\\.svc:5432/archive`));
    const owner = await get(`/api/v1/namespaces/${APP_SYSTEM_NS}/secrets/shop-db-owner`);
    assert.ok(!out.includes(decode(owner.data.password)), 'the preview shows the password');
    assert.ok(!/[A-Za-z0-9+/]{40,}={0,2}/.test(out.replace(/[0-9a-f]{64}/g, '')), `ciphertext-like text in the preview:\n${out}`);
  });

  it('destroy of both stacks', async () => {
    const app = await p.run({ op: 'destroy', workDir: appDir, stack: 'dev', program: APP_PROGRAM });
    assert.ok(app.ok, `pulumi destroy of the app failed: ${app.error}\n${app.stdout}\n${app.stderr}\n${await diagnostics()}`);
    // the app's rules left the Secret; the root layer moved what its database held back, before it went
    await migrationsDone();
    const platform = await p.run({ op: 'destroy', workDir: platformDir, stack: 'dev', program: PLATFORM_PROGRAM });
    assert.ok(platform.ok, `pulumi destroy of the platform failed: ${platform.error}\n${platform.stdout}\n${platform.stderr}\n${await diagnostics()}`);
    await migrationsDone();
    for (const ns of [APP_NS, APP_SYSTEM_NS, NS]) {
      await waitUntil(`namespace ${ns} to be gone`, async () => ((await kube(api, 'GET', `/api/v1/namespaces/${ns}`)).status === 404 ? true : undefined), { timeoutMs: 60_000, intervalMs: 250 });
    }
    assert.deepEqual(p.externalRequests, [], 'nothing was fetched from the network');
  });
});

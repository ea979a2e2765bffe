/**
 * 3. The application stack (stacks/app-example) through the real Pulumi engine, against the outputs of a
 * platform stack (StackReference on the same local backend) that runs the TopologyConfig operator.
 *
 * The platform is the dev stack with the operator turned on by its config (`harikube:topologyOperator: true`);
 * the operator itself runs as a local process with exactly the args of the Deployment the platform declared
 * (plus a kubeconfig instead of the in-cluster service account), as in the real-Kubernetes tests. The app's
 * `pulumi up` waits for its TopologyConfig to be Ready, so it completes only once the operator has merged the
 * rules; the test then checks the merged Secret, the sealed endpoints and what the app created after.
 *
 * Then a routing change of the app team (a rule moved to another database) is previewed with
 * `pulumi preview --diff`: the reviewer sees the rule and its old and new backend, not ciphertext.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { ServerProcess } from '../support/child.js';
import { freePort } from '../support/env.js';
import { KubeStack } from '../support/kube-stack.js';
import { waitUntil } from '../support/wait.js';
import { ClusterStandIn, kube, type KubeAccess } from './cluster-standin.js';
import { projectFile, PulumiHarness, pulumiSkip, REPO_ROOT } from './harness.js';
import { CNPG_CRDS, installCrds } from './third-party-crds.js';

const PLATFORM_PROGRAM = path.join(REPO_ROOT, 'stacks', 'platform', 'index.ts');
const APP_DIR = path.join(REPO_ROOT, 'stacks', 'app-example');
const APP_PROGRAM = path.join(APP_DIR, 'index.ts');
const NS = 'harikube';

function platformConfig(): string {
  const doc = parseYaml(readFileSync(path.join(REPO_ROOT, 'stacks', 'platform', 'Pulumi.dev.yaml'), 'utf8')) as { config: Record<string, unknown> };
  doc.config['harikube:databaseOperators'] = false;
  doc.config['harikube:topologyOperator'] = true;
  return stringifyYaml(doc);
}

function appConfig(edit: (c: Record<string, unknown>) => void = () => {}): string {
  const doc = parseYaml(readFileSync(path.join(APP_DIR, 'Pulumi.dev.yaml'), 'utf8')) as { config: Record<string, unknown> };
  doc.config['harikube-app-example:platformStack'] = 'organization/harikube/dev';
  edit(doc.config);
  return stringifyYaml(doc);
}

describe('Pulumi: an application stack against the platform stack\'s outputs', { skip: pulumiSkip() }, () => {
  let cluster: KubeStack;
  let access: KubeAccess;
  let standIn: ClusterStandIn;
  let p: PulumiHarness;
  let platformDir: string;
  let appDir: string;
  let operator: ServerProcess | undefined;
  const get = async (apiPath: string) => {
    const r = await kube(access, 'GET', apiPath);
    assert.equal(r.status, 200, `GET ${apiPath}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    return r.body;
  };

  before(async () => {
    cluster = await KubeStack.start('sqlite', { apiServerArgs: ['--enable-garbage-collector=false'] });
    access = { url: cluster.api.url, token: cluster.api.token, caPem: cluster.api.caPem };
    await installCrds(access, CNPG_CRDS);
    standIn = new ClusterStandIn(access);
    standIn.start();
    p = await PulumiHarness.create(cluster.api.kubeconfigPath);
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
    await cluster?.stop();
  });

  it('the platform with its operator: pulumi up, and the operator runs as its Deployment declares', async () => {
    const r = await p.ok({ op: 'up', workDir: platformDir, stack: 'dev', program: PLATFORM_PROGRAM });
    assert.equal(r.outputs?.targetSecret?.value, `${NS}/topology-config`);
    assert.equal(r.outputs?.decryptSecret?.value, `${NS}/topology-endpoint-keys`);
    assert.equal(r.outputs?.topologyEncryptionKey?.secret, true);
    await get('/apis/apiextensions.k8s.io/v1/customresourcedefinitions/topologyconfigs.harikube.info');

    const deployment = await get(`/apis/apps/v1/namespaces/${NS}/deployments/harikube-topology-operator`);
    const container = deployment.spec.template.spec.containers[0];
    const health = await freePort();
    const metrics = await freePort();
    const args = (container.args as string[]).map((a) =>
      a.startsWith('--health-probe-bind-address=') ? `--health-probe-bind-address=127.0.0.1:${health}` : a.startsWith('--metrics-bind-address=') ? `--metrics-bind-address=127.0.0.1:${metrics}` : a,
    );
    operator = new ServerProcess('harikube operator as deployed', process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'middleware', 'src', 'cli.ts'), ...args, '--kubeconfig', cluster.api.kubeconfigPath], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', POD_NAMESPACE: NS, POD_NAME: 'harikube-operator-local' },
    });
    await waitUntil('the operator to be ready', async () => {
      if (!operator!.running) throw operator!.failure('exited');
      return (await fetch(`http://127.0.0.1:${health}/readyz`)).status === 200 ? true : undefined;
    }, { timeoutMs: 90_000, intervalMs: 250 });
  });

  it('3. pulumi up of the application stack completes once its TopologyConfig is Ready', async () => {
    const r = await p.ok({ op: 'up', workDir: appDir, stack: 'dev', program: APP_PROGRAM });
    const tc = await get('/apis/harikube.info/v1/namespaces/shop/topologyconfigs/shop');
    const ready = (tc.status?.conditions ?? []).find((c: { type: string }) => c.type === 'Ready');
    assert.equal(ready?.status, 'True', JSON.stringify(tc.status));
    assert.equal(tc.spec.endpointDecryptSecret, `${NS}/topology-endpoint-keys`);
    assert.deepEqual(tc.spec.backends.map((b: { name: string }) => b.name), ['shop', 'shop-orders']);
    for (const b of tc.spec.backends) assert.ok(!b.endpoint.includes('postgres://'), 'endpoints are sealed in the TopologyConfig');
    assert.deepEqual((r.outputs?.topologyConfig?.value as { backends: Array<{ endpoint: string }> }).backends.map((b) => b.endpoint), ['postgres://harikube:***@shop-db-rw.shop.svc:5432/shop', 'postgres://harikube:***@shop-db-rw.shop.svc:5432/orders']);

    // The operator opened the sealed endpoints into the Secret the platform's root layer reads.
    const merged = await get(`/api/v1/namespaces/${NS}/secrets/topology-config`);
    const files = Object.fromEntries(Object.entries(merged.data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]));
    const mine = Object.entries(files).find(([k]) => k.includes('shop.shop'));
    assert.ok(mine, `no file of shop/shop in ${Object.keys(files).join(', ')}`);
    const doc = parseYaml(mine[1]);
    const endpoints = (doc.backends as Array<{ name: string; endpoint: string }>).map((b) => [b.name, new URL(b.endpoint).host + new URL(b.endpoint).pathname]);
    assert.deepEqual(endpoints, [['shop', 'shop-db-rw.shop.svc:5432/shop'], ['shop-orders', 'shop-db-rw.shop.svc:5432/orders']]);
    const owner = await get('/api/v1/namespaces/shop/secrets/shop-db-owner');
    const password = Buffer.from(owner.data.password, 'base64').toString();
    assert.equal(decodeURIComponent(new URL(doc.backends[0].endpoint).password), password);

    // What the app declared after its routing exists.
    await get('/api/v1/namespaces/shop/configmaps/shop-settings');
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
    assert.match(out, /shop-db-rw\.shop\.svc:5432\/orders/);
    assert.match(out, /shop-db-rw\.shop\.svc:5432\/archive/);
    const owner = await get('/api/v1/namespaces/shop/secrets/shop-db-owner');
    assert.ok(!out.includes(Buffer.from(owner.data.password, 'base64').toString()), 'the preview shows the password');
    assert.ok(!/[A-Za-z0-9+/]{40,}={0,2}/.test(out.replace(/[0-9a-f]{64}/g, '')), `ciphertext-like text in the preview:\n${out}`);
  });

  it('destroy of both stacks', async () => {
    await p.ok({ op: 'destroy', workDir: appDir, stack: 'dev', program: APP_PROGRAM });
    await p.ok({ op: 'destroy', workDir: platformDir, stack: 'dev', program: PLATFORM_PROGRAM });
    assert.deepEqual(p.externalRequests, [], 'nothing was fetched from the network');
  });
});

/**
 * The product's documented workflow end to end, on a real kube-apiserver whose storage is the middleware:
 * `harikube operator crd | kubectl apply -f -`; the operator process running with a kubeconfig; two teams
 * apply TopologyConfigs with kubectl; the operator writes the merged Secret through the API server; the
 * middleware reads that Secret from its own store (`secret://harikube/topology-config`) and new objects of
 * the teams land in the databases their rules name (checked in the databases). An invalid TopologyConfig is
 * `Failed` with the reason, and the routing in effect stays as it was.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { ServerProcess } from '../support/child.js';
import { freePort } from '../support/env.js';
import { KubeStack, storedKeys } from '../support/kube-stack.js';
import { kubeTargetSkip } from '../support/kube-stack.js';
import { REPO_ROOT } from '../support/middleware.js';
import { CLI_ARGS } from '../support/cli.js';
import { metricValue } from '../support/metrics.js';
import { createScratchStore, type ScratchStore } from '../support/scratch-store.js';
import { waitUntil } from '../support/wait.js';
import { kubectlWait, widgetCrdYaml } from './kube-helpers.js';

const GROUP = 'gadgets.team-b.example.com';

function topologyConfigYaml(namespace: string, name: string, position: number, rules: string): string {
  return `apiVersion: harikube.info/v1
kind: TopologyConfig
metadata:
  name: ${name}
  namespace: ${namespace}
spec:
  position: ${position}
  backends:
${rules}`;
}

describe('TopologyConfig operator on a real kube-apiserver over the middleware', { skip: (await kubeTargetSkip('routed')) }, () => {
  let stack: KubeStack;
  let kc: KubeConfig;
  let core: CoreV1Api;
  let custom: CustomObjectsApi;
  let operator: ServerProcess;
  let pgStore: ScratchStore;
  let myStore: ScratchStore;

  const status = async (namespace: string, name: string): Promise<any> =>
    ((await custom.getNamespacedCustomObject({ group: 'harikube.info', version: 'v1', namespace, plural: 'topologyconfigs', name })) as any).status;

  before(async () => {
    pgStore = await createScratchStore('postgres');
    myStore = await createScratchStore('mysql');
    stack = await KubeStack.start('sqlite', { middlewareArgs: ['--topology-config', 'secret://harikube/topology-config'] });
    kc = stack.api.kubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    custom = kc.makeApiClient(CustomObjectsApi);
  });

  after(async () => {
    await operator?.stop();
    await stack?.stop();
    await Promise.all([pgStore, myStore].map((s) => s?.dispose().catch(() => undefined)));
  });

  it('installs the CRD with `harikube operator crd | kubectl apply -f -` and runs the operator with a kubeconfig', async () => {
    const crd = execFileSync(process.execPath, [...CLI_ARGS, 'operator', 'crd'], { cwd: REPO_ROOT, encoding: 'utf8' });
    await stack.api.kubectl(['apply', '-f', '-'], { input: crd });
    await kubectlWait(stack.api, 'Established', ['crd/topologyconfigs.harikube.info']);
    for (const name of ['harikube', 'team-a', 'team-b']) await core.createNamespace({ body: { metadata: { name } } });
    const probe = await freePort();
    operator = new ServerProcess('harikube operator', process.execPath, [
      ...CLI_ARGS, 'operator',
      '--kubeconfig', stack.api.kubeconfigPath,
      '--leader-elect=false',
      '--health-probe-bind-address', `127.0.0.1:${probe}`,
      '--metrics-bind-address', '0',
      '--log-format', 'json',
    ], { cwd: REPO_ROOT });
    await waitUntil('the operator to be ready', async () => {
      if (!operator.running) throw operator.failure('exited');
      const res = await fetch(`http://127.0.0.1:${probe}/readyz`);
      return res.status === 200 ? true : undefined;
    }, { timeoutMs: 60_000, intervalMs: 250 });
  });

  it('two teams\' TopologyConfigs become the merged Secret and the middleware routes by it', async () => {
    await stack.api.kubectl(['apply', '-f', '-'], {
      // The namespace a rule routes must not hold objects yet (moving keys is refused): team-a routes its data
      // namespace, created once the rule is live. (Its own namespace already holds keys, e.g. the operator's Events.)
      input: topologyConfigYaml('team-a', 'team-a-data', 10, `  - name: team-a-pg\n    endpoint: ${JSON.stringify(pgStore.endpoint)}\n    namespace: { namespace: team-a-data }\n`),
    });
    await stack.api.kubectl(['apply', '-f', '-'], {
      input: topologyConfigYaml('team-b', 'gadgets', 20, `  - name: team-b-gadgets\n    endpoint: ${JSON.stringify(myStore.endpoint)}\n    customresource: { group: ${GROUP} }\n`),
    });
    await kubectlWait(stack.api, 'Ready', ['-n', 'team-a', 'topologyconfig/team-a-data']);
    await kubectlWait(stack.api, 'Ready', ['-n', 'team-b', 'topologyconfig/gadgets']);
    assert.equal((await status('team-a', 'team-a-data')).deployStatus, 'Active');
    const secret = await core.readNamespacedSecret({ name: 'topology-config', namespace: 'harikube' });
    assert.deepEqual(Object.keys(secret.data ?? {}).sort(), ['0001-team-a.team-a-data.yaml', '0002-team-b.gadgets.yaml']);
    await waitUntil('the middleware to apply both rules from the Secret in its own store', async () =>
      (await metricValue(stack.middleware, 'harikube_topology_rules')) === 2 ? true : undefined, { timeoutMs: 60_000, intervalMs: 250 }).catch((e: Error) => {
      throw stack.middleware.process!.failure(e.message);
    });

    // New objects of both teams, through the API server.
    await core.createNamespace({ body: { metadata: { name: 'team-a-data' } } });
    await core.createNamespacedConfigMap({ namespace: 'team-a-data', body: { metadata: { name: 'orders' }, data: { a: '1' } } });
    await core.createNamespacedSecret({ namespace: 'team-a-data', body: { metadata: { name: 'orders-db' }, stringData: { p: 'x' } } });
    await stack.api.kubectl(['apply', '-f', '-'], { input: widgetCrdYaml(GROUP) });
    await kubectlWait(stack.api, 'Established', [`crd/widgets.${GROUP}`]);
    await waitUntil('the gadget API to serve', async () =>
      custom
        .createNamespacedCustomObject({ group: GROUP, version: 'v1', namespace: 'team-b', plural: 'widgets', body: { apiVersion: `${GROUP}/v1`, kind: 'Widget', metadata: { name: 'g1' }, spec: { size: 1 } } })
        .then(() => true), { timeoutMs: 30_000, intervalMs: 250 });
    await core.createNamespacedConfigMap({ namespace: 'team-b', body: { metadata: { name: 'plain' } } });

    const [def, pgKeys, myKeys] = await Promise.all([storedKeys(stack.stores[0]!.endpoint), storedKeys(pgStore.endpoint), storedKeys(myStore.endpoint)]);
    assert.deepEqual(pgKeys, ['/registry/configmaps/team-a-data/orders', '/registry/secrets/team-a-data/orders-db']);
    assert.deepEqual(myKeys, [`/registry/${GROUP}/widgets/team-b/g1`]);
    for (const k of ['/registry/configmaps/team-b/plain', '/registry/secrets/harikube/topology-config', `/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.${GROUP}`]) {
      assert.ok(def.includes(k), `${k} on the default backend`);
    }
    assert.ok(!def.includes('/registry/configmaps/team-a-data/orders'));
    // Reads through the API server span the databases.
    assert.equal((await core.readNamespacedConfigMap({ name: 'orders', namespace: 'team-a-data' })).data?.a, '1');
  });

  it('an invalid TopologyConfig is Failed with the reason, and the routing in effect stays', async () => {
    const secretBefore = await core.readNamespacedSecret({ name: 'topology-config', namespace: 'harikube' });
    // A second rule on team-a's database: two rules may not share one database.
    await stack.api.kubectl(['apply', '-f', '-'], {
      input: topologyConfigYaml('team-b', 'thief', 30, `  - name: team-b-steal\n    endpoint: ${JSON.stringify(pgStore.endpoint)}\n    namespace: { namespace: team-b-data }\n`),
    });
    const st = await waitUntil('the invalid TopologyConfig to fail', async () => {
      const s = await status('team-b', 'thief');
      return s?.deployStatus === 'Failed' ? s : undefined;
    }, { timeoutMs: 60_000, intervalMs: 250 });
    assert.match(st.deployStatusReason, /team-b-steal/, `the reason names the rule: ${st.deployStatusReason}`);
    assert.equal((await status('team-a', 'team-a-data')).deployStatus, 'Active', 'the other teams stay Active');
    const secretAfter = await core.readNamespacedSecret({ name: 'topology-config', namespace: 'harikube' });
    assert.deepEqual(secretAfter.data, secretBefore.data, 'the merged Secret is unchanged');
    assert.equal(await metricValue(stack.middleware, 'harikube_topology_rules'), 2);
    await core.createNamespacedConfigMap({ namespace: 'team-b', body: { metadata: { name: 'still-default' } } });
    await core.createNamespacedConfigMap({ namespace: 'team-a-data', body: { metadata: { name: 'still-pg' } } });
    assert.ok((await storedKeys(stack.stores[0]!.endpoint)).includes('/registry/configmaps/team-b/still-default'));
    assert.ok((await storedKeys(pgStore.endpoint)).includes('/registry/configmaps/team-a-data/still-pg'));
  });
});

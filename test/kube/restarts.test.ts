/**
 * Restarts under a real kube-apiserver (middleware on SQLite): the API server restarted (gracefully and with
 * kill -9) over the same middleware; the middleware restarted and killed with kill -9 under a running API
 * server with clients watching and writing. Nothing acknowledged is lost, every watcher sees every
 * acknowledged create exactly once, and the API server's watch caches resume instead of relisting.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { KubeStack, kubeTargetSkip } from '../support/kube-stack.js';
import { KubeWatch } from '../support/kube-watch.js';
import { metricSum, scrapeSum } from '../support/metrics.js';
import { waitUntil } from '../support/wait.js';

/** Sum of a counter over all its label sets in the API server's /metrics. */
async function counterSum(stack: KubeStack, name: string): Promise<number> {
  const res = await stack.api.request('GET', '/metrics');
  assert.equal(res.status, 200);
  return metricSum(String(res.body), name);
}

/** The middleware's count of Range requests answered so far. */
function middlewareRanges(stack: KubeStack): Promise<number> {
  return scrapeSum(`http://${stack.middleware.metricsAddress}/metrics`, 'harikube_grpc_requests_total', 'method="Range"');
}

describe('kube-apiserver and middleware restarts (SQLite)', { skip: await kubeTargetSkip('sqlite') }, () => {
  let stack: KubeStack;
  let kc: KubeConfig;
  let core: CoreV1Api;
  const watches: KubeWatch[] = [];

  before(async () => {
    stack = await KubeStack.start('sqlite');
    kc = stack.api.kubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    for (const name of ['r1', 'r2']) await core.createNamespace({ body: { metadata: { name } } });
  });

  after(async () => {
    for (const w of watches) w.close();
    await stack?.stop();
  });

  it('kube-apiserver restarted (SIGTERM, then kill -9) over the same middleware serves every object unchanged', async () => {
    const created = new Map<string, { uid: string; rv: string }>();
    for (let i = 0; i < 20; i++) {
      const o = await core.createNamespacedConfigMap({ namespace: 'r1', body: { metadata: { name: `keep-${i}` }, data: { i: String(i) } } });
      created.set(o.metadata!.name!, { uid: o.metadata!.uid!, rv: o.metadata!.resourceVersion! });
    }
    for (const how of ['stop', 'kill9'] as const) {
      await stack.api[how]();
      await stack.api.restart();
      const list = await core.listNamespacedConfigMap({ namespace: 'r1' });
      const got = new Map(list.items.filter((i) => /^(keep|after)-/.test(i.metadata!.name!)).map((i) => [i.metadata!.name!, { uid: i.metadata!.uid!, rv: i.metadata!.resourceVersion! }]));
      assert.deepEqual(got, created, `after ${how}: every object with its uid and resourceVersion`);
      assert.ok(BigInt(list.metadata!.resourceVersion!) >= BigInt([...created.values()].at(-1)!.rv));
      const o = await core.createNamespacedConfigMap({ namespace: 'r1', body: { metadata: { name: `after-${how}` } } });
      created.set(o.metadata!.name!, { uid: o.metadata!.uid!, rv: o.metadata!.resourceVersion! });
    }
  });

  for (const how of ['stop', 'kill9'] as const) {
    it(`middleware ${how === 'stop' ? 'restarted' : 'killed with kill -9 and restarted'} under writers and watchers: nothing acknowledged lost, watchers resume, no relist storm`, async () => {
      const tag = how === 'stop' ? 'g' : 'k';
      const start = await core.listNamespacedConfigMap({ namespace: 'r2', limit: 1 });
      const rv = start.metadata!.resourceVersion!;
      const w1 = await KubeWatch.open(kc, '/api/v1/namespaces/r2/configmaps', { resourceVersion: rv, allowWatchBookmarks: true });
      const w2 = await KubeWatch.open(kc, '/api/v1/configmaps', { resourceVersion: rv, allowWatchBookmarks: true });
      watches.push(w1, w2);
      const initsBefore = await counterSum(stack, 'apiserver_watch_cache_initializations_total');

      // Writers run through the outage; a create that returned is acknowledged and must survive.
      const acknowledged: string[] = [];
      let failed = 0;
      let stop = false;
      const writer = async (id: number) => {
        for (let i = 0; !stop && i < 2000; i++) {
          const name = `${tag}-w${id}-${i}`;
          try {
            await core.createNamespacedConfigMap({ namespace: 'r2', body: { metadata: { name }, data: { i: String(i) } } });
            acknowledged.push(name);
          } catch {
            failed++;
            await sleep(100);
          }
        }
      };
      const writers = [0, 1, 2, 3].map((id) => writer(id));
      await waitUntil('writes before the outage', () => (acknowledged.length >= 20 ? true : undefined), { timeoutMs: 60_000 });
      await stack.middleware[how]();
      await sleep(1_000);
      await stack.middleware.restart();
      const ackAtRestart = acknowledged.length;
      await waitUntil('writes after the restart', () => (acknowledged.length >= ackAtRestart + 40 ? true : undefined), { timeoutMs: 90_000 });
      stop = true;
      await Promise.all(writers);
      // The middleware's counters restarted with it: these are the Range requests since the restart.
      const rangesSinceRestart = await middlewareRanges(stack);

      // No acknowledged create lost: every one is readable, and is in a consistent list.
      const list = await core.listNamespacedConfigMap({ namespace: 'r2' });
      const names = new Set(list.items.map((i) => i.metadata!.name!));
      assert.deepEqual(acknowledged.filter((n) => !names.has(n)), [], 'every acknowledged object is stored');
      // Every watcher sees every acknowledged create, once, in resourceVersion order.
      for (const w of [w1, w2]) {
        await waitUntil(`watch ${w.path} to catch up`, () => (acknowledged.every((n) => w.events.some((e) => e.type === 'ADDED' && e.name === n)) ? true : undefined), {
          timeoutMs: 60_000,
        });
        const added = w.events.filter((e) => e.type === 'ADDED' && e.name.startsWith(`${tag}-`));
        assert.equal(new Set(added.map((e) => e.name)).size, added.length, `${w.path}: no create delivered twice`);
        const rvs = w.events.filter((e) => e.type !== 'BOOKMARK').map((e) => BigInt(e.resourceVersion));
        assert.ok(rvs.every((r, i) => i === 0 || r > rvs[i - 1]!), `${w.path}: events in resourceVersion order`);
        assert.equal(w.ended, undefined, `${w.path}: the client watch stayed open`);
      }
      // The watch caches resumed their etcd watches: no re-initialization (a relist) and only a handful of reads.
      const initsAfter = await counterSum(stack, 'apiserver_watch_cache_initializations_total');
      console.log(`middleware ${how}: ${acknowledged.length} acknowledged creates (${failed} failed during the outage), watch cache initializations +${initsAfter - initsBefore}, middleware Range requests since its restart ${rangesSinceRestart}`);
      assert.equal(initsAfter - initsBefore, 0, 'no watch cache was re-initialized (relisted)');
      // A relist of every watch cache would be one Range per resource type (about 70 here).
      assert.ok(rangesSinceRestart < 20, `a handful of Range requests after the restart, not a relist of every resource (got ${rangesSinceRestart})`);
    });
  }
});

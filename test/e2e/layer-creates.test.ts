/**
 * Creates through a parent whose rules send keys to a child middleware and to a real etcd
 * (backends/written-keys.ts): once the parent has read which keys they hold, a put of a key they never held
 * asks them nothing before it writes (the child answers no `Latest`, the etcd takes one transaction per
 * put, not two). The other half is what must never break: after the parent restarts, a key written before
 * is found again, so a create-if-absent Txn on it fails, a put is its next version with the old value as
 * prev_kv, and a key deleted before the restart is created anew.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { skipUnless } from '../support/env.js';
import { Etcd } from '../support/etcd.js';
import { EtcdClient } from '../support/grpc.js';
import { Middleware } from '../support/middleware.js';
import { scrapeSum } from '../support/metrics.js';
import { createScratchStore, type ScratchStore } from '../support/scratch-store.js';
import { waitUntil } from '../support/wait.js';

const skip = await skipUnless('etcd');

const b = (s: string) => Buffer.from(s);

describe('creates through a child layer and an etcd rule', { skip }, () => {
  let dir: string;
  let etcd: Etcd;
  let stores: ScratchStore[];
  let child: Middleware;
  let parent: Middleware;
  let client: EtcdClient;
  const childLatest = () => scrapeSum(`http://${child.metricsAddress}/metrics`, 'harikube_grpc_requests_total', 'method="Layer.Latest"');
  const etcdTxns = () => scrapeSum(`${etcd.clientUrl}/metrics`, 'grpc_server_handled_total', 'grpc_method="Txn"');

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'hk-layer-creates-'));
    stores = await Promise.all([createScratchStore('sqlite'), createScratchStore('sqlite')]);
    etcd = await Etcd.start();
    child = await Middleware.start({ endpoint: stores[1]!.endpoint, compactInterval: '0' });
    const file = path.join(dir, 'topology.yaml');
    await writeFile(
      file,
      stringify({
        backends: [
          { name: 'child', endpoint: `http://${child.address}`, prefix: { prefix: 'c/' } },
          { name: 'etcd', endpoint: etcd.clientUrl, prefix: { prefix: 'e/' } },
        ],
      }),
    );
    parent = await Middleware.start({ endpoint: stores[0]!.endpoint, compactInterval: '0', extraArgs: ['--topology-config', `file://${file}`] });
    client = new EtcdClient(parent.address);
  });

  after(async () => {
    client?.close();
    await parent?.stop();
    await child?.stop();
    await etcd?.destroy();
    for (const s of stores ?? []) await s.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Waits until a put of a new key under `prefix` asks the child nothing: the parent has read its keys. */
  async function childKeysRead(tag: string): Promise<void> {
    let n = 0;
    await waitUntil('a create in the child without a Latest call', async () => {
      const before = await childLatest();
      await client.put({ key: b(`/registry/c/${tag}-probe-${n++}`), value: b('probe') });
      return (await childLatest()) === before ? true : undefined;
    }, { timeoutMs: 15_000 });
  }

  it('a put of a key the child or the etcd never held asks them nothing first', async () => {
    for (const k of ['/registry/c/kept', '/registry/c/gone', '/registry/e/kept', '/registry/e/gone']) await client.put({ key: b(k), value: b(`${k} v1`) });
    await client.deleteRange({ key: b('/registry/c/gone') });
    await client.deleteRange({ key: b('/registry/e/gone') });
    await childKeysRead('first');
    const latest0 = await childLatest();
    for (let i = 0; i < 10; i++) await client.put({ key: b(`/registry/c/new-${i}`), value: b('v') });
    assert.equal(await childLatest(), latest0, 'no Latest call for ten creates in the child');
    // the etcd: each put of a new key is one transaction (its write), once the keys were read
    await waitUntil('creates in the etcd without a read first', async () => {
      const t0 = await etcdTxns();
      for (let i = 0; i < 5; i++) await client.put({ key: b(`/registry/e/new-${Date.now()}-${i}`), value: b('v') });
      return (await etcdTxns()) - t0 === 5 ? true : undefined;
    }, { timeoutMs: 15_000 });
  });

  it('after the parent restarts, keys written before are found again: no create over them, puts continue their versions', async () => {
    await parent.stop();
    await parent.restart();
    client.close();
    client = new EtcdClient(parent.address);
    await childKeysRead('restarted');
    for (const area of ['c', 'e']) {
      const kept = b(`/registry/${area}/kept`);
      const create = await client.txn({
        compare: [{ target: 'Mod', key: kept, mod_revision: 0, result: 'Equal' }],
        success: [{ request_put: { key: kept, value: b('created over it') } }],
        failure: [],
      });
      assert.equal(create.succeeded, false, `create-if-absent of ${area}/kept fails: the key exists`);
      const put = await client.put({ key: kept, value: b(`${area} v2`), prev_kv: true });
      assert.equal(put.prev_kv?.value.toString(), `/registry/${area}/kept v1`, `the put of ${area}/kept returns the old value`);
      const now = (await client.range({ key: kept })).kvs[0]!;
      assert.equal(Number(now.version), 2, `${area}/kept is at its second version`);
      const gone = b(`/registry/${area}/gone`);
      const recreate = await client.txn({
        compare: [{ target: 'Mod', key: gone, mod_revision: 0, result: 'Equal' }],
        success: [{ request_put: { key: gone, value: b('again') } }],
        failure: [],
      });
      assert.equal(recreate.succeeded, true, `${area}/gone, deleted before the restart, is created anew`);
      const again = (await client.range({ key: gone })).kvs[0]!;
      assert.deepEqual([Number(again.version), Number(again.create_revision)], [1, Number(again.mod_revision)], `${area}/gone starts over at version 1`);
    }
  });
});

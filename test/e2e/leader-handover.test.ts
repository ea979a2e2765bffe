/**
 * A rolling update of a leader-elected layer (issue 15, "Never down"), with real processes on one PostgreSQL
 * default backend: the new pod (another pod template) starts as a standby; the leader, seeing it, stops
 * serving and hands it the lease by itself (nobody stops it), exiting 0 so its container restarts as a
 * standby; the new pod becomes ready. That is what lets the Deployment use RollingUpdate with
 * maxUnavailable 0: the old pod is removed only after the new one is ready. Writers that retry (as
 * kube-apiserver does) lose nothing acknowledged, and the old pod restarted under its own name does not take
 * the lease back.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { b } from '../support/bytes.js';
import { skipUnless } from '../support/env.js';
import { EtcdClient } from '../support/grpc.js';
import { Middleware } from '../support/middleware.js';
import { createScratchStore, type ScratchStore } from '../support/scratch-store.js';
import { waitUntil } from '../support/wait.js';

const skip = await skipUnless('postgres');
const LEASE = '2s';
const RENEW = '500ms';

describe('leader hand-over in a rolling update', { skip }, () => {
  let store: ScratchStore;
  const pods: Middleware[] = [];
  const clients: EtcdClient[] = [];
  const pod = async (name: string, template: string, waitFor: 'ready' | 'live') => {
    const m = await Middleware.start({
      endpoint: store.endpoint,
      compactInterval: '0',
      waitFor,
      extraArgs: ['--leader-elect', '--leader-elect-identity', name, '--leader-elect-template', template, '--leader-elect-lease-duration', LEASE, '--leader-elect-renew-interval', RENEW],
    });
    pods.push(m);
    const c = new EtcdClient(m.address);
    clients.push(c);
    return { m, c };
  };

  before(async () => {
    store = await createScratchStore('postgres');
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const m of pods) await m.stop();
    await store?.dispose();
  });

  it('the leader hands over to the new pod by itself; nothing acknowledged is lost; the old pod does not take it back', async (t) => {
    const old = await pod('harikube-root-5d9f-aaaaa', 'tmpl-1', 'ready');
    const acked: { key: string; revision: bigint; at: number }[] = [];
    /** Writes through whichever pod is ready, retrying for a bounded time, as the API server's client would. */
    const write = async (i: number) => {
      const key = `/ho/${String(i).padStart(4, '0')}`;
      const r = await waitUntil(`a write of ${key}`, async () => {
        for (const [j, m] of pods.entries()) {
          if (!m.process?.running || !(await m.isReady())) continue;
          const res = await clients[j]!.put({ key: b(key), value: b(String(i)) }).catch(() => undefined);
          if (res) return res;
        }
        return undefined;
      }, { timeoutMs: 60_000, intervalMs: 100 }).catch((err: Error) => {
        throw new Error(`${err.message}\n${pods.map((m) => m.process!.failure('output').message).join('\n')}`);
      });
      acked.push({ key, revision: BigInt(r.header.revision), at: Date.now() });
    };
    for (let i = 0; i < 20; i++) await write(i);

    const fresh = await pod('harikube-root-7c4b-bbbbb', 'tmpl-2', 'live');
    assert.equal(await fresh.m.isReady(), false, 'the new pod starts as a standby');
    // writes go on while the new pod waits and while the lease changes hands
    let i = 20;
    const exit = old.m.process!.exited;
    let exited: Awaited<typeof exit> | undefined;
    void exit.then((e) => (exited = e));
    while (exited === undefined && i < 2_000) await write(i++);
    for (const end = i + 20; i < end; ) await write(i++);

    assert.deepEqual(await exit, { code: 0, signal: null }, 'the old leader stepped down by itself and exited 0');
    assert.match(old.m.process!.tail(), /handing the lease over to it/);
    assert.match(old.m.process!.tail(), /handed the leader lease over/);
    assert.equal(await fresh.m.isReady(), true, 'the new pod serves');
    assert.match(fresh.m.process!.tail(), /acquired the leader lease/);

    // every acknowledged write is there, at the revision it was acknowledged with
    const all = await fresh.c.range({ key: b('/ho/'), range_end: b('/ho0') });
    assert.deepEqual(all.kvs.map((kv) => [kv.key.toString(), BigInt(kv.mod_revision)]), acked.map((a) => [a.key, a.revision]));
    // reported, not asserted (speed is for benchmarks): what the hand-over cost these writers
    const pause = Math.max(...acked.slice(1).map((a, k) => a.at - acked[k]!.at));
    t.diagnostic(`longest pause between two acknowledged writes across the hand-over: ${pause} ms (lease ${LEASE}, renew interval ${RENEW})`);
    const revisions = acked.map((a) => a.revision);
    assert.deepEqual([...revisions].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)), revisions, 'revisions only grow across the hand-over');

    // the old pod's container restarts under its pod name (same template): it stands by and stays a standby
    const restarted = await pod('harikube-root-5d9f-aaaaa', 'tmpl-1', 'live');
    await sleep(2_000 * 3);
    assert.equal(await restarted.m.isReady(), false, 'the old pod does not take the lease back');
    assert.equal(await fresh.m.isReady(), true);
    assert.doesNotMatch(fresh.m.process!.tail(), /handing the lease over/);
  });
});

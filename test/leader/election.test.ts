/**
 * The lease and the fence over a real SQLite meta store, in process: one holder at a time, a standby
 * takes over only after the lease stood still for a whole lease duration (or at once after a release),
 * and a deposed leader's store commits nothing.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { openBackend } from '../../middleware/src/backends/index.js';
import type { Backend } from '../../middleware/src/backends/backend.js';
import { LeaderElection, META_LEADER } from '../../middleware/src/leader/election.js';
import { Store } from '../../middleware/src/mvcc/store.js';
import { b } from '../support/bytes.js';

describe('leader lease and fencing', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hk-leader-'));
  const endpoint = `sqlite://${path.join(dir, 'state.db')}`;
  const opened: Backend[] = [];
  const backend = async () => {
    const be = openBackend(endpoint);
    await be.open();
    opened.push(be);
    return be;
  };
  const election = async (identity: string, leaseDurationMs = 300) =>
    new LeaderElection({ backend: await backend(), identity, leaseDurationMs, renewIntervalMs: 100 });

  after(async () => {
    for (const be of opened) await be.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a deposed leader is fenced: its write fails and nothing is stored', async () => {
    const a = await election('a');
    assert.equal(await a.acquire(), true);
    let lostReason: string | undefined;
    const store = await Store.open({ backend: await backend(), fence: a.fence });
    await store.put({ key: b('/k/1'), value: b('a') });

    // a does not renew (as if paused); b waits for the lease to stand still, then takes it
    const bElection = await election('b');
    assert.equal(await bElection.acquire(), true);
    assert.equal((await opened[0]!.getMeta(META_LEADER))?.toString(), '2/b');

    a.startRenewing((reason) => (lostReason = reason));
    await assert.rejects(store.put({ key: b('/k/2'), value: b('a') }), /no longer the leader \(the lease is held by "2\/b"\)/);
    assert.match(lostReason ?? '', /held by "2\/b"/);
    const got = await store.range({ key: b('/k/'), range_end: b('/k0') });
    assert.deepEqual(got.kvs.map((kv) => kv.key.toString()), ['/k/1']);
    await store.close();
    await bElection.stop();
  });

  it('a standby does not take a lease that is being renewed, and takes a released one at once', async () => {
    const holder = await election('holder', 400);
    // the lease left by the previous test ("2/b") is not renewed: holder takes it after it stands still
    assert.equal(await holder.acquire(), true);
    holder.startRenewing(() => assert.fail('holder lost its lease'));
    const standby = await election('standby', 400);
    const stop = new AbortController();
    const waiting = standby.acquire(stop.signal);
    // a renewed lease never stands still for 400 ms: after several lease durations the standby still waits
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(standby.isLeader, false);
    await holder.release();
    assert.equal(await waiting, true);
    assert.ok(standby.isLeader);
    await standby.stop();
  });

  it('a release keeps the epoch: a stalled process whose identity takes the lease again is still fenced', async () => {
    // a database of its own: the first lease taken there is epoch 1, as after a release that forgot the epoch
    const fresh = `sqlite://${path.join(dir, 'again.db')}`;
    const backend = async () => {
      const be = openBackend(fresh);
      await be.open();
      opened.push(be);
      return be;
    };
    const election = async (identity: string) => new LeaderElection({ backend: await backend(), identity, leaseDurationMs: 300, renewIntervalMs: 100 });
    const lease = async () => (await opened.at(-1)!.getMeta(META_LEADER))!.toString();
    // a1 holds the lease, then stalls (no renewal, no release)
    const a1 = await election('again');
    assert.equal(await a1.acquire(), true);
    const stalled = await Store.open({ backend: await backend(), fence: a1.fence });
    await stalled.put({ key: b('/again/1'), value: b('a1') });
    const first = await lease();

    // another replica takes the stood-still lease and releases it; the pod comes back under the same name
    const other = await election('other');
    assert.equal(await other.acquire(), true);
    await other.release();
    const released = await lease();
    assert.match(released, /^\d+\/$/, 'a released lease names nobody and keeps its epoch');
    const a2 = await election('again');
    assert.equal(await a2.acquire(), true);
    const retaken = await lease();
    assert.notEqual(retaken, first, `the same identity got its old token back (${first}): its stalled process would pass the fence`);
    assert.equal(Number(retaken.split('/')[0]), Number(released.split('/')[0]) + 1);

    await assert.rejects(stalled.put({ key: b('/again/2'), value: b('a1') }), /no longer the leader/);
    const got = await stalled.range({ key: b('/again/'), range_end: b('/again0') });
    assert.deepEqual(got.kvs.map((kv) => kv.key.toString()), ['/again/1']);
    await stalled.close();
    await a2.stop();
  });
});

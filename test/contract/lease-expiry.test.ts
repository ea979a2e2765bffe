/**
 * Lease expiry, as kube-apiserver uses leases (grant, attach, never keep-alive): the keys vanish after the
 * TTL with DELETE watch events carrying prev_kv, and the lease is gone.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { b, rev, text, underPrefix } from '../support/bytes.js';
import { contractSuite } from '../support/contract.js';
import { kubeCreate } from '../support/kube-txn.js';
import { waitUntil } from '../support/wait.js';

/** Short, but not below etcd's minimum TTL (which it would silently raise). */
const TTL_SECONDS = 2;
/** Bound on waiting for expiry: the TTL plus generous slack for busy shared cores. */
const EXPIRY_WAIT_MS = (TTL_SECONDS + 13) * 1_000;

await contractSuite('lease expiry', (t) => {
  it('expired lease deletes its keys with DELETE events carrying prev_kv', async () => {
    const p = t.prefix('lease-expiry');
    // Watch first, so the expiry cannot slip in before the watch exists.
    const w = t.client.watch();
    const id = (await w.create({ ...underPrefix(p), prev_kv: true })).watch_id;
    const lease = await t.client.leaseGrant(TTL_SECONDS);
    assert.equal(lease.TTL, String(TTL_SECONDS));
    // kube-apiserver attaches TTL objects through its create Txn.
    await t.client.txn(kubeCreate(b(`${p}event-a`), b('a'), lease.ID));
    await t.client.txn(kubeCreate(b(`${p}event-b`), b('b'), lease.ID));
    const kept = rev(await t.client.put({ key: b(`${p}kept`), value: b('k') }));

    const events = await w.waitFor(
      'two DELETE events from the lease expiry',
      () => {
        const deletes = w.eventsOf(id).filter((e) => e.type === 'Delete');
        return deletes.length >= 2 ? deletes : undefined;
      },
      EXPIRY_WAIT_MS,
    );
    assert.equal(events.length, 2);
    for (const e of events) {
      assert.equal(e.type, 'Delete');
      assert.ok(BigInt(e.kv.mod_revision) > kept);
      assert.equal(e.kv.value.length, 0);
      assert.ok(e.prev_kv, 'an expiry DELETE carries prev_kv');
      assert.equal(e.prev_kv.lease, lease.ID);
      assert.equal(text(e.prev_kv.key), text(e.kv.key));
    }
    assert.deepEqual(events.map((e) => text(e.prev_kv!.value)).sort(), ['a', 'b']);
    assert.equal(events[0]!.kv.mod_revision, events[1]!.kv.mod_revision, 'one expiry, one revision (as etcd)');

    const left = await t.client.range(underPrefix(p));
    assert.deepEqual(left.kvs.map((kv) => text(kv.key).slice(p.length)), ['kept']);
    const ttl = await t.client.leaseTimeToLive(lease.ID);
    assert.equal(ttl.TTL, '-1');
    // The leases list may trail the expiry by a moment; wait for it (bounded) rather than sleep.
    await waitUntil('the expired lease to leave the leases list', async () =>
      (await t.client.leaseLeases()).leases.some((l) => l.ID === lease.ID) ? undefined : true,
    );
    w.close();
  });
});

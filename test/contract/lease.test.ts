/**
 * Leases: grant (server- and client-chosen IDs, int64 beyond 2^53), time-to-live with keys, the leases
 * list, keep-alive, and revoke deleting attached keys with DELETE events. (Expiry: lease-expiry.test.ts.)
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { b, rev, text, underPrefix } from '../support/bytes.js';
import { contractSuite } from '../support/contract.js';
import { ETCD_ERRORS } from '../support/etcd-errors.js';

/** 2^53 + 1: a JS number would silently turn it into 2^53. */
const BIG_LEASE_ID = '9007199254740993';

await contractSuite('leases', (t) => {
  it('grant returns a nonzero ID and the TTL without bumping the revision', async () => {
    const r0 = rev(await t.client.range({ key: b('x') }));
    const lease = await t.client.leaseGrant(60);
    assert.notEqual(lease.ID, '0');
    assert.equal(lease.TTL, '60');
    assert.equal(lease.error, '');
    assert.equal(rev(lease), r0);
    const other = await t.client.leaseGrant(60);
    assert.notEqual(other.ID, lease.ID);
    await t.client.leaseRevoke(lease.ID);
    await t.client.leaseRevoke(other.ID);
  });

  it('a client-chosen ID above 2^53 round-trips exactly; a taken ID is refused', async () => {
    const key = b(`${t.prefix('lease-big-id')}k`);
    const lease = await t.client.leaseGrant(60, BIG_LEASE_ID);
    assert.equal(lease.ID, BIG_LEASE_ID);
    await t.client.put({ key, value: b('v'), lease: BIG_LEASE_ID });
    assert.equal((await t.client.range({ key })).kvs[0]!.lease, BIG_LEASE_ID);
    const ttl = await t.client.leaseTimeToLive(BIG_LEASE_ID, true);
    assert.equal(ttl.ID, BIG_LEASE_ID);
    assert.deepEqual(ttl.keys, [key]);
    assert.ok((await t.client.leaseLeases()).leases.some((l) => l.ID === BIG_LEASE_ID));
    await assert.rejects(t.client.leaseGrant(60, BIG_LEASE_ID), ETCD_ERRORS.leaseExists);
    await t.client.leaseRevoke(BIG_LEASE_ID);
  });

  it('time-to-live reports granted TTL, remaining TTL and attached keys; -1 for an unknown lease', async () => {
    const p = t.prefix('lease-ttl');
    const lease = await t.client.leaseGrant(60);
    await t.client.put({ key: b(`${p}b`), value: b('1'), lease: lease.ID });
    await t.client.put({ key: b(`${p}a`), value: b('2'), lease: lease.ID });
    const withKeys = await t.client.leaseTimeToLive(lease.ID, true);
    assert.equal(withKeys.ID, lease.ID);
    assert.equal(withKeys.grantedTTL, '60');
    const remaining = Number(withKeys.TTL);
    assert.ok(remaining > 0 && remaining <= 60, `remaining TTL ${remaining}`);
    assert.deepEqual(withKeys.keys.map(text).sort(), [`${p}a`, `${p}b`]);
    const withoutKeys = await t.client.leaseTimeToLive(lease.ID, false);
    assert.deepEqual(withoutKeys.keys, []);
    await t.client.leaseRevoke(lease.ID);

    // etcd answers an unknown (or revoked) lease with TTL -1, not an error.
    const gone = await t.client.leaseTimeToLive(lease.ID, true);
    assert.deepEqual([gone.ID, gone.TTL, gone.keys], [lease.ID, '-1', []]);
  });

  it('the leases list holds granted leases and drops revoked ones', async () => {
    const a = await t.client.leaseGrant(60);
    const c = await t.client.leaseGrant(60);
    let ids = (await t.client.leaseLeases()).leases.map((l) => l.ID);
    assert.ok(ids.includes(a.ID) && ids.includes(c.ID));
    await t.client.leaseRevoke(a.ID);
    ids = (await t.client.leaseLeases()).leases.map((l) => l.ID);
    assert.ok(!ids.includes(a.ID) && ids.includes(c.ID));
    await t.client.leaseRevoke(c.ID);
  });

  it('keep-alive answers with the ID and the full TTL; an unknown lease gets TTL 0', async () => {
    const lease = await t.client.leaseGrant(60);
    const stream = t.client.keepAlive();
    for (let i = 0; i < 3; i++) {
      const res = await stream.keepAlive(lease.ID);
      assert.deepEqual([res.ID, res.TTL], [lease.ID, '60']);
    }
    const unknown = await stream.keepAlive('4242424242');
    assert.deepEqual([unknown.ID, unknown.TTL], ['4242424242', '0']);
    stream.close();
    await t.client.leaseRevoke(lease.ID);
  });

  it('revoke deletes the attached keys at one revision, with DELETE events carrying prev_kv', async () => {
    const p = t.prefix('lease-revoke');
    const lease = await t.client.leaseGrant(60);
    await t.client.put({ key: b(`${p}a`), value: b('1'), lease: lease.ID });
    await t.client.put({ key: b(`${p}b`), value: b('2'), lease: lease.ID });
    await t.client.put({ key: b(`${p}free`), value: b('3') });
    const w = t.client.watch();
    const id = (await w.create({ ...underPrefix(p), prev_kv: true })).watch_id;
    const r0 = rev(await t.client.range({ key: b(p) }));

    const revoked = await t.client.leaseRevoke(lease.ID);
    assert.equal(rev(revoked), r0 + 1n, 'revoke answers with the deletion revision');
    const events = await w.waitForEvents(id, 2);
    assert.deepEqual(
      events.map((e) => [e.type, text(e.kv.key).slice(p.length), e.kv.mod_revision]).sort(),
      [['Delete', 'a', String(r0 + 1n)], ['Delete', 'b', String(r0 + 1n)]],
    );
    for (const e of events) {
      assert.equal(e.prev_kv?.lease, lease.ID);
      assert.equal(text(e.prev_kv!.key), text(e.kv.key));
    }
    const left = await t.client.range(underPrefix(p));
    assert.deepEqual(left.kvs.map((kv) => text(kv.key).slice(p.length)), ['free']);
    assert.ok(!(await t.client.leaseLeases()).leases.some((l) => l.ID === lease.ID));
    await assert.rejects(t.client.leaseRevoke(lease.ID), ETCD_ERRORS.leaseNotFound);
    w.close();
  });

  it('revoking a lease without keys does not bump the revision', async () => {
    const lease = await t.client.leaseGrant(60);
    const r0 = rev(await t.client.range({ key: b('x') }));
    assert.equal(rev(await t.client.leaseRevoke(lease.ID)), r0);
  });
});

/** Write transactions: several rows per revision, own-write visibility, isolation, rollback, limits, big values. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { inWriteTxn, BackendUnavailableError, KeyTooLongError, type KeyRow, type WriteTxn } from '../../../middleware/src/backends/backend.js';
import type { Suite } from './suite.js';

const b = (s: string) => Buffer.from(s, 'utf8');
const MAX_LEASE = '9223372036854775807';

function row(key: string, rev: number, sub: number, extra: Partial<KeyRow> = {}): KeyRow {
  return { key: b(key), value: b(`${key}@${rev}`), modRevision: rev, sub, createRevision: rev, prevRevision: 0, version: 1, lease: '0', deleted: false, ...extra };
}

export function writeTests(suite: Suite): void {
  test('one revision holds many rows, ordered by sub', () =>
    suite.fresh(async (be, log) => {
      const rev = await log.commit({ put: 'm/e' }, { put: 'm/a' }, { put: 'm/c' }, { put: 'm/b' }, { put: 'm/d' });
      const changes = await be.changes(rev, rev, 0);
      assert.deepEqual(
        changes.map((r) => [r.key.toString(), r.sub]),
        [
          ['m/e', 0],
          ['m/a', 1],
          ['m/c', 2],
          ['m/b', 3],
          ['m/d', 4],
        ],
      );
      const range = await be.range({ start: b('m/'), end: b('m0'), revision: rev, limit: 0 });
      assert.deepEqual(range.map((r) => r.key.toString()), ['m/a', 'm/b', 'm/c', 'm/d', 'm/e']);
      assert.ok(range.every((r) => r.modRevision === rev));
      // A batch insert of several rows in one call.
      await inWriteTxn(be, async (tx) => {
        await tx.insert([row('n/1', rev + 1, 0), row('n/2', rev + 1, 1), row('n/3', rev + 1, 2)]);
      });
      assert.equal(await be.count(b('n/'), b('n0'), rev + 1), 3);
    }));

  test('a write transaction reads its own writes; other reads see them only after commit', () =>
    suite.fresh(async (be) => {
      const lease = { id: MAX_LEASE, ttl: 30, expiresAt: 1_900_000_000_000 };
      await inWriteTxn(be, async (tx) => {
        await tx.insert([row('own', 1, 0)]);
        assert.deepEqual(await tx.latest(b('own')), row('own', 1, 0));
        assert.deepEqual(await tx.range({ start: b('own'), end: b('own0'), revision: 1, limit: 0 }), [row('own', 1, 0)]);
        assert.deepEqual(await tx.range({ start: b('own'), revision: Number.MAX_SAFE_INTEGER, limit: 0 }), [row('own', 1, 0)]);
        await tx.setMeta('m', b('v'));
        await tx.putLease(lease);
        // Concurrent reads outside the transaction see nothing of it yet.
        assert.deepEqual(await be.range({ start: b('own'), revision: 1, limit: 0 }), []);
        assert.equal(await be.maxRevision(), 0);
        assert.equal(await be.count(b('o'), b('p'), 1), 0);
        assert.deepEqual(await be.changes(1, 1, 0), []);
        assert.equal(await be.getMeta('m'), undefined);
        assert.deepEqual(await be.leases(), []);
      });
      assert.deepEqual(await be.range({ start: b('own'), revision: 1, limit: 0 }), [row('own', 1, 0)]);
      assert.equal(await be.maxRevision(), 1);
      assert.deepEqual(await be.getMeta('m'), b('v'));
      assert.deepEqual(await be.leases(), [lease]);
    }));

  test('latest() returns the newest row of a key, tombstones included', () =>
    suite.fresh(async (be, log) => {
      await log.commit({ put: 'k' });
      await log.commit({ del: 'k' });
      await inWriteTxn(be, async (tx) => {
        const latest = await tx.latest(b('k'));
        assert.equal(latest?.deleted, true);
        assert.equal(latest?.modRevision, 2);
        assert.equal(await tx.latest(b('never')), undefined);
      });
    }));

  test('a write that throws leaves nothing behind and rethrows the same error', () =>
    suite.fresh(async (be, log) => {
      await log.commit({ put: 'keep' });
      const boom = new Error('caller failed');
      await assert.rejects(
        inWriteTxn(be, async (tx) => {
          await tx.insert([row('gone', 2, 0), row('gone2', 2, 1)]);
          await tx.setMeta('gone', b('x'));
          await tx.putLease({ id: '5', ttl: 1, expiresAt: 1 });
          await tx.deleteLease('5');
          await tx.putLease({ id: '6', ttl: 1, expiresAt: 1 });
          throw boom;
        }),
        (err) => err === boom,
      );
      assert.equal(await be.maxRevision(), 1);
      assert.deepEqual(await be.range({ start: b('gone'), end: b('gonf'), revision: 9, limit: 0 }), []);
      assert.equal(await be.getMeta('gone'), undefined);
      assert.deepEqual(await be.leases(), []);
      // The same revision and subs are free again (the insert was rolled back, not just hidden).
      await inWriteTxn(be, async (tx) => tx.insert([row('gone', 2, 0)]));
      assert.equal(await be.maxRevision(), 2);
    }));

  test('a constraint violation is an ordinary error, not unavailability, and rolls back', () =>
    suite.fresh(async (be) => {
      await inWriteTxn(be, async (tx) => tx.insert([row('a', 1, 0)]));
      await assert.rejects(
        inWriteTxn(be, async (tx) => {
          await tx.insert([row('b', 2, 0)]);
          await tx.insert([row('c', 1, 0)]); // (rev, sub) taken
        }),
        (err) => err instanceof Error && !(err instanceof BackendUnavailableError),
      );
      assert.equal(await be.maxRevision(), 1);
      await inWriteTxn(be, async (tx) => tx.insert([row('b', 2, 0)]));
    }));

  test('the WriteTxn refuses use after its write has ended', () =>
    suite.fresh(async (be) => {
      let leaked: WriteTxn | undefined;
      await inWriteTxn(be, async (tx) => {
        leaked = tx;
      });
      await assert.rejects(async () => leaked!.insert([row('late', 1, 0)]), /already ended/);
      assert.equal(await be.maxRevision(), 0);
    }));

  test('a key over the length limit is refused with KeyTooLongError naming the limit; SQLite takes etcd-sized keys', () =>
    suite.fresh(async (be) => {
      const long = Buffer.alloc(4096, 0x61);
      if (suite.kind === 'sqlite') {
        // no index entry limit: keys as long as etcd's request limit allows
        const huge = Buffer.alloc(1024 * 1024, 0x62);
        await inWriteTxn(be, async (tx) => tx.insert([{ ...row('x', 1, 0), key: long }, { ...row('y', 1, 1), key: huge }]));
        assert.deepEqual((await be.range({ start: long, revision: 1, limit: 0 }))[0]?.key, long);
        assert.deepEqual((await be.range({ start: huge, revision: 1, limit: 0 }))[0]?.key, huge);
        assert.equal(await be.count(Buffer.alloc(0), Buffer.alloc(0), 1), 2);
        return;
      }
      await assert.rejects(
        inWriteTxn(be, async (tx) => tx.insert([row('short', 1, 0), { ...row('x', 1, 1), key: long }])),
        (err) => err instanceof KeyTooLongError && /^key of 4096 bytes exceeds the 2048-byte key limit of (PostgreSQL|MySQL) storage$/.test(err.message),
      );
      assert.equal(await be.maxRevision(), 0);
      const atLimit = Buffer.alloc(2048, 0xfe);
      await inWriteTxn(be, async (tx) => tx.insert([{ ...row('x', 1, 0), key: atLimit }]));
      assert.deepEqual((await be.range({ start: atLimit, revision: 1, limit: 0 }))[0]?.key, atLimit);
    }));

  test('values of 1 MiB and 1.5 MiB round-trip exactly, also as prev rows', () =>
    suite.fresh(async (be, log) => {
      const mib = randomBytes(1024 * 1024);
      const big = randomBytes(1.5 * 1024 * 1024);
      await log.commit({ put: 'big', value: mib });
      await log.commit({ put: 'big', value: big }, { put: 'big2', value: mib });
      const [latest] = await be.range({ start: b('big'), revision: 2, limit: 0 });
      assert.ok(latest!.value.equals(big));
      const [older] = await be.range({ start: b('big'), revision: 1, limit: 0 });
      assert.ok(older!.value.equals(mib));
      const [change] = await be.changes(2, 2, 1);
      assert.ok(change!.value.equals(big) && change!.prev!.value.equals(mib));
    }));

  test('lease IDs are exact int64 in rows, leases and leased keys', () =>
    suite.fresh(async (be, log) => {
      await inWriteTxn(be, async (tx) => tx.putLease({ id: MAX_LEASE, ttl: 10, expiresAt: 1_800_000_000_123 }));
      await log.commit({ put: 'leased', lease: MAX_LEASE }, { put: 'neg', lease: '-9223372036854775808' });
      const [r] = await be.range({ start: b('leased'), revision: 1, limit: 0 });
      assert.equal(r!.lease, MAX_LEASE);
      assert.equal((await be.range({ start: b('neg'), revision: 1, limit: 0 }))[0]!.lease, '-9223372036854775808');
      assert.equal((await be.changes(1, 1, 1))[0]!.lease, MAX_LEASE);
      assert.deepEqual(await be.leases(), [{ id: MAX_LEASE, ttl: 10, expiresAt: 1_800_000_000_123 }]);
      const leased = await be.leasedKeys();
      assert.deepEqual(
        leased.map((l) => [l.key.toString(), l.lease]),
        [
          ['leased', MAX_LEASE],
          ['neg', '-9223372036854775808'],
        ],
      );
    }));
}

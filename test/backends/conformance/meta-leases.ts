/** Meta values, stored leases, and the live leased keys the lease keeper rebuilds its index from. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inWriteTxn, type LeaseRow } from '../../../middleware/src/backends/backend.js';
import type { Suite } from './suite.js';

const b = (s: string) => Buffer.from(s, 'utf8');
const byId = (a: LeaseRow, c: LeaseRow) => (BigInt(a.id) < BigInt(c.id) ? -1 : 1);

export function metaLeaseTests(suite: Suite): void {
  test('meta values are set, overwritten and read back as bytes', () =>
    suite.fresh(async (be) => {
      const binary = Buffer.from([0, 255, 128, 10]);
      await inWriteTxn(be, async (tx) => {
        await tx.setMeta('compact_revision', b('5'));
        await tx.setMeta('identity', binary);
      });
      assert.deepEqual(await be.getMeta('compact_revision'), b('5'));
      assert.deepEqual(await be.getMeta('identity'), binary);
      await inWriteTxn(be, async (tx) => tx.setMeta('compact_revision', b('12')));
      assert.deepEqual(await be.getMeta('compact_revision'), b('12'));
      assert.equal(await be.getMeta('Compact_revision'), undefined, 'names are case-sensitive');
      assert.equal(await be.getMeta('missing'), undefined);
    }));

  test('leases are stored, updated by id, deleted and listed', () =>
    suite.fresh(async (be) => {
      const a = { id: '1', ttl: 60, expiresAt: 1_700_000_060_000 };
      const big = { id: '9223372036854775807', ttl: 5, expiresAt: 1_700_000_005_000 };
      const mid = { id: '7587863453626880001', ttl: 15, expiresAt: 1_700_000_015_000 };
      await inWriteTxn(be, async (tx) => {
        await tx.putLease(a);
        await tx.putLease(big);
        await tx.putLease(mid);
      });
      assert.deepEqual((await be.leases()).sort(byId), [a, mid, big]);
      const renewed = { ...big, expiresAt: 1_700_000_099_000 };
      await inWriteTxn(be, async (tx) => {
        await tx.putLease(renewed);
        await tx.deleteLease('1');
        await tx.deleteLease('424242'); // absent: not an error
      });
      assert.deepEqual((await be.leases()).sort(byId), [mid, renewed]);
    }));

  test('leasedKeys lists only live latest versions that carry a lease', () =>
    suite.fresh(async (be, log) => {
      await log.commit(
        { put: 'live', lease: '11' },
        { put: 'dropped', lease: '11' },
        { put: 'deleted', lease: '12' },
        { put: 'moved', lease: '11' },
        { put: 'plain' },
      );
      await log.commit({ put: 'dropped' }, { del: 'deleted' }, { put: 'moved', lease: '12' });
      await log.commit({ put: 'recreated', lease: '13' });
      await log.commit({ del: 'recreated' });
      await log.commit({ put: 'recreated', lease: '14' });
      const leased = (await be.leasedKeys()).map((l) => [l.key.toString(), l.lease]).sort();
      assert.deepEqual(leased, [
        ['live', '11'],
        ['moved', '12'],
        ['recreated', '14'],
      ]);
    }));
}

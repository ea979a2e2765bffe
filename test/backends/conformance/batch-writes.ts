/**
 * `WriteTxn.prefetch` + `holdWrites` (group commit's fast path on the database servers): reads answered from
 * the batch's one read and its held rows must be exactly what the statement-by-statement path answers, held
 * rows must commit all or nothing, and a held row that cannot be written must fail with DeferredWriteError,
 * certainly without committing. Backends without held writes (SQLite) skip it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inWriteTxn, DeferredWriteError, KeyTooLongError, type Backend, type KeyRow, type WriteTxn } from '../../../middleware/src/backends/backend.js';
import type { Suite } from './suite.js';

const b = (s: string) => Buffer.from(s, 'utf8');

function row(key: string, rev: number, sub: number, extra: Partial<KeyRow> = {}): KeyRow {
  return { key: b(key), value: b(`${key}@${rev}`), modRevision: rev, sub, createRevision: rev, prevRevision: 0, version: 1, lease: '0', deleted: false, ...extra };
}

/** Runs `fn` in a write transaction that holds its writes, with `keys` read ahead, as the write queue does. */
async function batched<T>(be: Backend, keys: string[], fn: (tx: WriteTxn) => Promise<T>): Promise<T | undefined> {
  return inWriteTxn(be, async (tx) => {
    tx.holdWrites!();
    await tx.prefetch!(keys.map(b));
    return fn(tx);
  });
}

async function hasBatchWrites(be: Backend): Promise<boolean> {
  const tx = await be.begin();
  const has = tx.holdWrites !== undefined && tx.prefetch !== undefined;
  await tx.rollback();
  return has;
}

export function batchWriteTests(suite: Suite): void {
  test('held writes: latest() of read keys, unread keys and held rows equals the statement-by-statement answer', (t) =>
    suite.fresh(async (be, log) => {
      if (!(await hasBatchWrites(be))) return t.skip('no held writes on this backend');
      await log.commit({ put: 'live' }, { put: 'dead' });
      await log.commit({ put: 'live' }, { del: 'dead' });
      const expected = await inWriteTxn(be, async (tx) => [await tx.latest(b('live')), await tx.latest(b('dead')), await tx.latest(b('never')), await tx.latest(b('unread'))]);
      assert.equal(expected[1]?.deleted, true);
      await batched(be, ['live', 'dead', 'never', 'live'], async (tx) => {
        assert.deepEqual([await tx.latest(b('live')), await tx.latest(b('dead')), await tx.latest(b('never')), await tx.latest(b('unread'))], expected);
        await tx.insert([row('never', 3, 0), row('live', 3, 1, { createRevision: 1, prevRevision: 2, version: 3 })]);
        assert.deepEqual(await tx.latest(b('never')), row('never', 3, 0));
        assert.equal((await tx.latest(b('live')))?.modRevision, 3);
        // nothing is visible outside before commit
        assert.equal(await be.maxRevision(), 2);
      });
      assert.equal(await be.maxRevision(), 3);
      assert.deepEqual((await be.range({ start: b('never'), revision: 3, limit: 0 }))[0], row('never', 3, 0));
    }));

  test('held writes: a range over held rows sees them; one that misses them does not need them', (t) =>
    suite.fresh(async (be) => {
      if (!(await hasBatchWrites(be))) return t.skip('no held writes on this backend');
      await batched(be, ['r/a', 'r/b'], async (tx) => {
        await tx.insert([row('r/a', 1, 0), row('r/b', 1, 1)]);
        assert.deepEqual(await tx.range({ start: b('s/'), end: b('s0'), revision: Number.MAX_SAFE_INTEGER, limit: 0 }), []);
        const seen = await tx.range({ start: b('r/'), end: b('r0'), revision: Number.MAX_SAFE_INTEGER, limit: 0 });
        assert.deepEqual(seen.map((r) => r.key.toString()), ['r/a', 'r/b']);
        await tx.insert([row('r/c', 2, 0)]);
        assert.deepEqual((await tx.range({ start: b('r/c'), revision: Number.MAX_SAFE_INTEGER, limit: 0 })).map((r) => r.modRevision), [2]);
      });
      assert.equal(await be.count(b('r/'), b('r0'), 2), 3);
    }));

  test('held writes: held rows and meta values commit together or not at all', (t) =>
    suite.fresh(async (be) => {
      if (!(await hasBatchWrites(be))) return t.skip('no held writes on this backend');
      await batched(be, ['m/a'], async (tx) => {
        await tx.setMeta('batch', b('1'));
        await tx.insert([row('m/a', 1, 0)]);
      });
      assert.deepEqual(await be.getMeta('batch'), b('1'));
      assert.equal(await be.maxRevision(), 1);
      await assert.rejects(
        batched(be, ['m/b', 'm/c'], async (tx) => {
          await tx.setMeta('batch', b('2'));
          await tx.insert([row('m/b', 2, 0), row('m/c', 1, 0)]); // (1, 0) is taken
        }),
        DeferredWriteError,
      );
      assert.deepEqual(await be.getMeta('batch'), b('1'));
      assert.equal(await be.maxRevision(), 1);
    }));

  test('held writes: a held row that cannot be written fails the commit with DeferredWriteError and nothing of the batch commits', (t) =>
    suite.fresh(async (be) => {
      if (!(await hasBatchWrites(be))) return t.skip('no held writes on this backend');
      await inWriteTxn(be, async (tx) => tx.insert([row('taken', 1, 0)]));
      await assert.rejects(
        batched(be, ['x', 'y'], async (tx) => {
          await tx.insert([row('x', 2, 0)]);
          await tx.insert([row('y', 1, 0)]); // (rev, sub) taken: only the database knows, at commit
        }),
        (err) => err instanceof DeferredWriteError && err.message.includes(be.description),
      );
      assert.equal(await be.maxRevision(), 1);
      assert.deepEqual(await be.range({ start: b('x'), revision: 2, limit: 0 }), []);
      // the connection is still good: the same revision commits now
      await batched(be, ['x'], async (tx) => tx.insert([row('x', 2, 0)]));
      assert.equal(await be.maxRevision(), 2);
    }));

  test('held writes: a key too long fails at insert(), and the transaction still commits the other rows', (t) =>
    suite.fresh(async (be) => {
      if (!(await hasBatchWrites(be))) return t.skip('no held writes on this backend');
      await batched(be, ['ok'], async (tx) => {
        await tx.insert([row('ok', 1, 0)]);
        await assert.rejects(async () => tx.insert([row('k'.repeat(4096), 1, 1)]), KeyTooLongError);
      });
      assert.deepEqual((await be.range({ start: b('ok'), revision: 1, limit: 0 })).map((r) => r.key.toString()), ['ok']);
    }));
}

/**
 * The write transaction of a child-middleware backend (backends/middleware/buffered-txn.ts): reads see its
 * own writes, keys read ahead are answered without another round trip, and commit hands everything over
 * once. The target is an in-memory stand-in for the child (the e2e layer tests run the real one).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KeyRow, RangeQuery } from '../../middleware/src/backends/backend.js';
import { BufferedWriteTxn, type BufferedTxnTarget } from '../../middleware/src/backends/buffered-txn.js';

const row = (key: string, rev: number, deleted = false): KeyRow => ({
  key: Buffer.from(key),
  value: Buffer.from(deleted ? '' : `${key}@${rev}`),
  modRevision: rev,
  sub: 0,
  createRevision: rev,
  prevRevision: 0,
  version: deleted ? 0 : 1,
  lease: '0',
  deleted,
});

function target(stored: KeyRow[]) {
  const calls: string[] = [];
  const committed: { rows: KeyRow[]; meta: Map<string, Buffer> }[] = [];
  // the child's answers: `latest` the newest row, a tombstone included; `range` live keys only
  const newest = (key: Buffer) => stored.filter((r) => r.key.equals(key)).sort((a, b) => b.modRevision - a.modRevision)[0];
  const t: BufferedTxnTarget = {
    description: 'child',
    latest: async (key) => (calls.push(`latest ${key}`), newest(key)),
    latestMany: async (keys) => (calls.push(`latestMany ${keys.join(',')}`), keys.map(newest)),
    range: async (q: RangeQuery) =>
      (calls.push(`range ${q.start}`), [...new Set(stored.map((r) => r.key.toString()))].map((k) => newest(Buffer.from(k))!).filter((r) => !r.deleted && (q.end === undefined ? r.key.equals(q.start) : r.key >= q.start))),
    getMeta: async () => undefined,
    commitRows: async (rows, meta) => void committed.push({ rows, meta }),
  };
  return { t, calls, committed };
}

test('keys read ahead are answered from the read-ahead, own writes first, in one round trip', async () => {
  const { t, calls, committed } = target([row('/a', 5), row('/b', 6)]);
  let released = 0;
  const tx = new BufferedWriteTxn(t, () => released++);
  await tx.prefetch(['/a', '/b', '/c', '/a'].map((k) => Buffer.from(k)));
  assert.deepEqual(calls, ['latestMany /a,/b,/c'], 'one round trip, each key once');
  assert.equal((await tx.latest(Buffer.from('/a')))?.modRevision, 5);
  assert.equal(await tx.latest(Buffer.from('/c')), undefined, 'a key known absent stays absent without asking');
  tx.insert([row('/a', 9)]);
  assert.equal((await tx.latest(Buffer.from('/a')))?.modRevision, 9, 'its own write wins over the read-ahead');
  const MAX = Number.MAX_SAFE_INTEGER;
  assert.deepEqual((await tx.range({ start: Buffer.from('/b'), revision: MAX, limit: 0 })).map((r) => r.modRevision), [6], 'a one-key delete reads the read-ahead');
  assert.deepEqual(calls, ['latestMany /a,/b,/c'], 'nothing else was asked');
  await tx.latest(Buffer.from('/d'));
  assert.deepEqual(calls.slice(1), ['latest /d'], 'a key not read ahead is asked for');
  await tx.commit();
  assert.deepEqual(committed.map((c) => c.rows.map((r) => r.modRevision)), [[9]]);
  assert.equal(released, 1);
  await assert.rejects(tx.latest(Buffer.from('/a')), /already ended/);
});

test('a transaction that wrote nothing commits without a call', async () => {
  const { t, committed } = target([]);
  const tx = new BufferedWriteTxn(t, () => undefined);
  await tx.commit();
  assert.deepEqual(committed, []);
});

test('a key whose newest row is a tombstone: latest is the tombstone (it hides a live copy elsewhere), a range lists nothing', async () => {
  // while keys move, a key deleted in the child may still have its older live row in the migration source:
  // the transaction's reads need the tombstone to tell that the key is deleted, not absent here
  const { t } = target([row('/gone', 5), row('/gone', 8, true), row('/here', 6)]);
  const MAX = Number.MAX_SAFE_INTEGER;
  for (const ahead of [false, true]) {
    const tx = new BufferedWriteTxn(t, () => undefined);
    if (ahead) await tx.prefetch([Buffer.from('/gone'), Buffer.from('/here')]);
    const latest = await tx.latest(Buffer.from('/gone'));
    assert.deepEqual([latest?.modRevision, latest?.deleted], [8, true], `latest of a deleted key${ahead ? ', read ahead' : ''}`);
    assert.deepEqual(await tx.range({ start: Buffer.from('/gone'), revision: MAX, limit: 0 }), [], `a range of a deleted key${ahead ? ', read ahead' : ''}`);
    assert.deepEqual((await tx.range({ start: Buffer.from('/here'), revision: MAX, limit: 0 })).map((r) => r.modRevision), [6]);
    await tx.rollback();
  }
});

/**
 * The write transaction of a child-middleware or etcd backend (backends/buffered-txn.ts): reads see its
 * own writes, keys read ahead or known from the transactions before (backends/newest-rows.ts) are answered
 * without another round trip, and commit hands everything over once. The target is an in-memory stand-in
 * for the child (the e2e layer tests run the real one).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KeyRow, RangeQuery } from '../../middleware/src/backends/backend.js';
import { BufferedWriteTxn, type BufferedTxnTarget } from '../../middleware/src/backends/buffered-txn.js';
import { NewestRows } from '../../middleware/src/backends/newest-rows.js';
import { Lock } from '../../middleware/src/backends/sql/lock.js';
import { WrittenKeys } from '../../middleware/src/backends/written-keys.js';

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

function target(stored: KeyRow[], opts: { newestBytes?: number; failCommit?: () => boolean } = {}) {
  const calls: string[] = [];
  const lock = new Lock();
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
    commitRows: async (rows, meta) => {
      if (opts.failCommit?.()) throw new Error('connection reset');
      committed.push({ rows, meta });
      stored.push(...rows);
    },
    newest: new NewestRows(lock, opts.newestBytes),
    written: new WrittenKeys(),
  };
  /** A transaction begun as the backends begin one: holding the write lock. */
  const begin = async () => new BufferedWriteTxn(t, await lock.acquire());
  return { t, calls, committed, lock, begin };
}

test('keys read ahead are answered from the read-ahead, own writes first, in one round trip', async () => {
  const { t, calls, committed, lock } = target([row('/a', 5), row('/b', 6)]);
  let released = 0;
  const release = await lock.acquire();
  const tx = new BufferedWriteTxn(t, () => (released++, release()));
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
  const { committed, begin } = target([]);
  const tx = await begin();
  await tx.commit();
  assert.deepEqual(committed, []);
});

test('a key whose newest row is a tombstone: latest is the tombstone (it hides a live copy elsewhere), a range lists nothing', async () => {
  // while keys move, a key deleted in the child may still have its older live row in the migration source:
  // the transaction's reads need the tombstone to tell that the key is deleted, not absent here
  const { begin, t } = target([row('/gone', 5), row('/gone', 8, true), row('/here', 6)]);
  const MAX = Number.MAX_SAFE_INTEGER;
  for (const ahead of [false, true]) {
    t.newest.clear(); // each pass asks the child
    const tx = await begin();
    if (ahead) await tx.prefetch([Buffer.from('/gone'), Buffer.from('/here')]);
    const latest = await tx.latest(Buffer.from('/gone'));
    assert.deepEqual([latest?.modRevision, latest?.deleted], [8, true], `latest of a deleted key${ahead ? ', read ahead' : ''}`);
    assert.deepEqual(await tx.range({ start: Buffer.from('/gone'), revision: MAX, limit: 0 }), [], `a range of a deleted key${ahead ? ', read ahead' : ''}`);
    assert.deepEqual((await tx.range({ start: Buffer.from('/here'), revision: MAX, limit: 0 })).map((r) => r.modRevision), [6]);
    await tx.rollback();
  }
});

const keys = (...ks: string[]) => ks.map((k) => Buffer.from(k));

test('rows a transaction wrote or read are known to the next one without asking the child', async () => {
  const { calls, begin } = target([row('/a', 5), row('/b', 6)]);
  const first = await begin();
  await first.prefetch(keys('/a', '/b'));
  first.insert([row('/a', 9)]);
  await first.commit();
  calls.length = 0;
  const second = await begin();
  await second.prefetch(keys('/a', '/b', '/c'));
  assert.deepEqual(calls, ['latestMany /c'], 'only the key never seen is asked for');
  assert.equal((await second.latest(Buffer.from('/a')))?.modRevision, 9, 'the row the first wrote');
  assert.equal((await second.latest(Buffer.from('/b')))?.modRevision, 6, 'the row the first read');
  second.insert([row('/b', 10)]);
  await second.rollback();
  calls.length = 0;
  const third = await begin();
  assert.equal((await third.latest(Buffer.from('/b')))?.modRevision, 6, 'a rolled-back write is not known: the committed row is');
  assert.deepEqual(calls, [], 'a rollback keeps what the transaction read');
  await third.rollback();
});

test('the known rows are dropped when anything else held the write lock, a commit failed, or they were cleared', async () => {
  let fail = false;
  const { calls, begin, lock, t } = target([row('/a', 5)], { failCommit: () => fail });
  const warm = async () => {
    const tx = await begin();
    await tx.prefetch(keys('/a'));
    await tx.commit();
  };
  const asked = async () => {
    calls.length = 0;
    const tx = await begin();
    await tx.latest(Buffer.from('/a'));
    await tx.rollback();
    return calls.length > 0;
  };
  await warm();
  assert.equal(await asked(), false, 'known while only write transactions take the lock');
  await lock.run(() => undefined); // a revert, compaction or migration step
  assert.equal(await asked(), true, 'asked again after another holder of the lock');

  await warm();
  fail = true;
  const tx = await begin();
  tx.insert([row('/a', 7)]);
  await assert.rejects(tx.commit(), /connection reset/);
  fail = false;
  assert.equal(await asked(), true, 'asked again after a commit whose outcome is unknown');

  await warm();
  const during = await begin();
  t.newest.clear(); // compaction of a child, which does not take the lock (it may remove a tombstone read)
  await during.latest(Buffer.from('/a'));
  await during.commit();
  assert.equal(await asked(), true, 'a transaction begun before a clear does not put its rows back');
});

test('the known rows are bounded in bytes: the least recently used go first', async () => {
  const stored = Array.from({ length: 10 }, (_, i) => row(`/k${i}`, i + 1));
  // room for about three rows (160 bytes of overhead each, plus key and value)
  const { calls, begin } = target(stored, { newestBytes: 3 * 180 });
  const tx = await begin();
  await tx.prefetch(stored.map((r) => r.key));
  await tx.commit();
  calls.length = 0;
  const next = await begin();
  await next.prefetch(stored.map((r) => r.key));
  assert.deepEqual(calls, ['latestMany /k0,/k1,/k2,/k3,/k4,/k5,/k6'], 'the three read last are known, the rest asked again');
  await next.rollback();
});

test('once the keys the child holds are read, a key it never held is known absent without asking; a key written since is asked for', async () => {
  const { calls, begin, t } = target([row('/old', 3), row('/gone', 4), row('/gone', 5, true)]);
  // the scan: every key of the child, tombstones included
  assert.equal(await t.written.load(async () => [row('/gone', 5, true), row('/old', 3)]), true);
  const tx = await begin();
  await tx.prefetch(keys('/new1', '/new2', '/old', '/gone'));
  assert.deepEqual(calls, ['latestMany /old,/gone'], 'only the keys the child holds are asked for');
  assert.equal(await tx.latest(Buffer.from('/new1')), undefined);
  assert.equal((await tx.latest(Buffer.from('/gone')))?.deleted, true, 'a deleted key is its tombstone, not absent');
  tx.insert([row('/new1', 9)]);
  await tx.commit();
  t.newest.clear(); // what the transactions knew is gone (a revert, say): the key written must be asked for
  calls.length = 0;
  const next = await begin();
  assert.equal((await next.latest(Buffer.from('/new1')))?.modRevision, 9);
  assert.equal(await next.latest(Buffer.from('/new2')), undefined);
  assert.deepEqual(calls, ['latest /new1'], 'the key written is asked for, the one never written is not');
  await next.rollback();
});

test('a commit that fails still counts its keys as written: its outcome is unknown', async () => {
  let fail = true;
  const { calls, begin, t } = target([], { failCommit: () => fail });
  await t.written.load(async () => []);
  const tx = await begin();
  tx.insert([row('/maybe', 4)]);
  await assert.rejects(tx.commit(), /connection reset/);
  fail = false;
  const next = await begin();
  await next.latest(Buffer.from('/maybe'));
  assert.deepEqual(calls, ['latest /maybe'], 'asked for, not taken as absent');
  await next.rollback();
});

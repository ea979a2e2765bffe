/** Snapshot reads: single keys, ranges, limits, keysOnly, counts and changes, checked against the reference log. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backend, RangeQuery } from '../../../middleware/src/backends/backend.js';
import type { ModelLog, Op } from '../support/model.js';
import type { Suite } from './suite.js';

const b = (s: string) => Buffer.from(s, 'utf8');
const EVERYTHING = Buffer.alloc(0);

/** Deterministic pseudo-random numbers (a test failure must be reproducible). */
function lcg(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
}

/** ~40 revisions over 24 keys in three prefixes: puts, updates, deletes, re-creates, multi-key revisions. */
export async function randomHistory(log: ModelLog, revisions = 40): Promise<void> {
  const rnd = lcg(7);
  const keys = ['/p/a', '/p/b', '/p/c', '/p/d', '/q/a', '/q/b', '/q/c', '/r'].flatMap((k) => [k, `${k}/1`, `${k}/2`]);
  for (let i = 0; i < revisions; i++) {
    const ops: Op[] = [];
    const n = 1 + Math.floor(rnd() * 3);
    const used = new Set<string>();
    for (let j = 0; j < n; j++) {
      const key = keys[Math.floor(rnd() * keys.length)]!;
      if (used.has(key)) continue;
      used.add(key);
      ops.push(rnd() < 0.25 ? { del: key } : { put: key });
    }
    await log.commit(...ops);
  }
}

async function expectSame(be: Backend, log: ModelLog, q: RangeQuery): Promise<void> {
  assert.deepEqual(await be.range(q), log.range(q), `range ${JSON.stringify({ ...q, start: q.start.toString(), end: q.end?.toString() })}`);
}

export function readTests(suite: Suite): void {
  test('an empty store reads as empty', () =>
    suite.fresh(async (be) => {
      assert.equal(await be.maxRevision(), 0);
      assert.deepEqual(await be.range({ start: EVERYTHING, end: EVERYTHING, revision: 10, limit: 0 }), []);
      assert.deepEqual(await be.range({ start: b('a'), revision: 10, limit: 0 }), []);
      assert.equal(await be.count(EVERYTHING, EVERYTHING, 10), 0);
      assert.deepEqual(await be.changes(1, 10, 0), []);
      assert.equal(await be.getMeta('compact_revision'), undefined);
      assert.deepEqual(await be.leases(), []);
      assert.deepEqual(await be.leasedKeys(), []);
    }));

  test('a single-key get returns the newest version at the revision, hides tombstones, and sees re-creation', () =>
    suite.fresh(async (be, log) => {
      await log.commit({ put: 'a', value: 'v1' }); // 1
      await log.commit({ put: 'b' }); // 2
      await log.commit({ put: 'a', value: 'v3' }); // 3
      await log.commit({ del: 'a' }); // 4
      await log.commit({ put: 'a', value: 'v5' }); // 5
      for (let rev = 0; rev <= 6; rev++) {
        for (const key of ['a', 'b', 'c']) {
          await expectSame(be, log, { start: b(key), revision: rev, limit: 0 });
          assert.equal(await be.count(b(key), undefined, rev), log.count(b(key), undefined, rev), `count ${key}@${rev}`);
        }
      }
      const [at3] = await be.range({ start: b('a'), revision: 3, limit: 0 });
      assert.deepEqual(at3, { key: b('a'), value: b('v3'), modRevision: 3, sub: 0, createRevision: 1, prevRevision: 1, version: 2, lease: '0', deleted: false });
      assert.deepEqual(await be.range({ start: b('a'), revision: 4, limit: 0 }), [], 'deleted at 4');
      const [recreated] = await be.range({ start: b('a'), revision: 5, limit: 0 });
      assert.deepEqual(recreated, { key: b('a'), value: b('v5'), modRevision: 5, sub: 0, createRevision: 5, prevRevision: 0, version: 1, lease: '0', deleted: false });
      const [keysOnly] = await be.range({ start: b('a'), revision: 5, limit: 0, keysOnly: true });
      assert.deepEqual(keysOnly!.value, Buffer.alloc(0));
      assert.equal(keysOnly!.modRevision, 5);
    }));

  test('ranges, limits, keysOnly and counts match the reference at every revision', () =>
    suite.fresh(async (be, log) => {
      await randomHistory(log);
      const queries: Omit<RangeQuery, 'revision'>[] = [
        { start: b('/p/'), end: b('/p0'), limit: 0 },
        { start: b('/p/b'), end: b('/q/b/1'), limit: 0 },
        { start: b('/q/'), end: b('/q0'), limit: 2 },
        { start: b('/q/'), end: b('/q0'), limit: 2, keysOnly: true },
        { start: b('/'), end: EVERYTHING, limit: 0 },
        { start: b('/q/c'), end: EVERYTHING, limit: 3 },
        { start: EVERYTHING, end: EVERYTHING, limit: 1 },
        { start: b('/p/c/2'), end: b('/p/c/2\0'), limit: 0 },
        { start: b('/zzz'), end: EVERYTHING, limit: 0 },
      ];
      for (let rev = 1; rev <= log.revision + 1; rev++) {
        for (const q of queries) await expectSame(be, log, { ...q, revision: rev });
        for (const q of queries) {
          assert.equal(await be.count(q.start, q.end, rev), log.count(q.start, q.end, rev), `count from ${q.start} at ${rev}`);
        }
      }
      assert.equal(await be.maxRevision(), log.revision);
    }));

  test('ranges of more keys than one read chunk come back whole and in order, at every limit', () =>
    suite.fresh(async (be, log) => {
      // 1,300 keys: more than two of the SQLite backend's 512-key chunks. Values of mixed sizes, some empty,
      // some holding NUL and invalid UTF-8; then updates and deletes so the two revisions differ.
      const name = (i: number) => Buffer.concat([b(`/l/${String(i).padStart(4, '0')}`), i % 9 === 0 ? Buffer.from([0, 0xff]) : Buffer.alloc(0)]);
      const value = (i: number) => (i % 7 === 0 ? '' : i % 5 === 0 ? Buffer.alloc(3000, i) : Buffer.from([i & 0xff, 0, 0xc3, 0x28, i >> 8]));
      await log.commit(...Array.from({ length: 1300 }, (_, i) => ({ put: name(i), value: value(i) })));
      const ops: Op[] = [];
      for (let i = 0; i < 1300; i += 11) ops.push(i % 2 === 0 ? { del: name(i) } : { put: name(i), value: `new ${i}` });
      await log.commit(...ops);
      const queries: Omit<RangeQuery, 'revision'>[] = [
        { start: b('/l/'), end: b('/l0'), limit: 0 },
        { start: b('/l/'), end: b('/l0'), limit: 0, keysOnly: true },
        { start: b('/l/'), end: EVERYTHING, limit: 0 },
        { start: b('/l/'), end: b('/l0'), limit: 511 },
        { start: b('/l/'), end: b('/l0'), limit: 512 },
        { start: b('/l/'), end: b('/l0'), limit: 513 },
        { start: b('/l/'), end: b('/l0'), limit: 1025, keysOnly: true },
        { start: b('/l/0100'), end: b('/l/1200'), limit: 0 },
        { start: b('/l/0100'), end: b('/l0'), limit: 1199 },
      ];
      for (const rev of [1, 2]) {
        for (const q of queries) await expectSame(be, log, { ...q, revision: rev });
        assert.equal(await be.count(b('/l/'), b('/l0'), rev), log.count(b('/l/'), b('/l0'), rev));
      }
    }));

  test('a snapshot at an older revision ignores newer rows, deletes and creations', () =>
    suite.fresh(async (be, log) => {
      await log.commit({ put: 'k/1', value: 'old' }, { put: 'k/2', value: 'old' }); // 1
      await log.commit({ put: 'k/1', value: 'new' }, { del: 'k/2' }, { put: 'k/3' }); // 2
      const old = await be.range({ start: b('k/'), end: b('k0'), revision: 1, limit: 0 });
      assert.deepEqual(
        old.map((r) => [r.key.toString(), r.value.toString()]),
        [
          ['k/1', 'old'],
          ['k/2', 'old'],
        ],
      );
      const now = await be.range({ start: b('k/'), end: b('k0'), revision: 2, limit: 0 });
      assert.deepEqual(now.map((r) => r.key.toString()), ['k/1', 'k/3']);
      assert.equal(await be.count(b('k/'), b('k0'), 1), 2);
    }));

  test('changes list every row in (revision, sub) order with the row each superseded', () =>
    suite.fresh(async (be, log) => {
      await randomHistory(log);
      assert.deepEqual(await be.changes(1, log.revision, 0), log.changes(1, log.revision, 0));
      assert.deepEqual(await be.changes(5, 12, 0), log.changes(5, 12, 0));
      assert.deepEqual(await be.changes(3, log.revision, 7), log.changes(3, log.revision, 7));
      assert.deepEqual(await be.changes(log.revision + 1, log.revision + 5, 0), []);
      const all = await be.changes(1, log.revision, 0);
      const tombstone = all.find((r) => r.deleted);
      assert.ok(tombstone?.prev && !tombstone.prev.deleted && tombstone.prev.value.length > 0, 'a tombstone carries the deleted version');
      assert.ok(all.some((r) => r.prevRevision === 0 && r.prev === undefined), 'a create has no prev');
    }));
}

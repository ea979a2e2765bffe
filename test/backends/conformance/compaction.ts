/**
 * Compaction: removes exactly the rows no read at or above the revision can see, keeps what reads and watch
 * catch-up above it need, works in bounded batches, stops at the deadline and resumes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Backend, KeyRow } from '../../../middleware/src/backends/backend.js';
import type { ModelLog } from '../support/model.js';
import { randomHistory } from './reads.js';
import type { Suite } from './suite.js';

const ALL = Buffer.alloc(0);
const FAR = () => Date.now() + 60_000;
const label = (r: KeyRow) => `${r.key.toString()}@${r.modRevision}`;

/** Rows at or below `revision` that must survive compaction to it: each key's latest, unless a tombstone below it. */
function survivors(rows: KeyRow[], revision: number): string[] {
  const latest = new Map<string, KeyRow>();
  for (const r of rows) if (r.modRevision <= revision) latest.set(r.key.toString('hex'), r);
  return rows.filter((r) => r.modRevision <= revision && latest.get(r.key.toString('hex')) === r && (!r.deleted || r.modRevision === revision)).map(label);
}

async function stored(be: Backend, upTo: number): Promise<string[]> {
  return (await be.changes(1, upTo, 0)).map(label);
}

/** Everything a reader at or above `revision` can observe. */
async function observable(be: Backend, log: ModelLog, revision: number): Promise<unknown> {
  const out: unknown[] = [];
  for (let r = revision; r <= log.revision; r++) {
    out.push(await be.range({ start: ALL, end: ALL, revision: r, limit: 0 }), await be.count(ALL, ALL, r));
  }
  out.push(await be.changes(revision + 1, log.revision, 0));
  return out;
}

/** The hand-made history: superseded rows, a tombstone below 6, one exactly at 6, a re-create, rows above 6. */
async function handHistory(log: ModelLog): Promise<void> {
  await log.commit({ put: 'a' }, { put: 'b' }, { put: 'c' }); // 1
  await log.commit({ put: 'a' }); // 2
  await log.commit({ del: 'b' }); // 3: tombstone below R
  await log.commit({ put: 'a' }, { put: 'd' }); // 4
  await log.commit({ put: 'b' }); // 5: re-created
  await log.commit({ del: 'c' }); // 6: tombstone at R
  await log.commit({ put: 'a' }, { put: 'e' }); // 7
  await log.commit({ del: 'd' }); // 8
  await log.commit({ put: 'b' }); // 9
}

export function compactionTests(suite: Suite): void {
  test('compaction removes superseded rows and old tombstones, keeps the tombstone at the revision and every read above', () =>
    suite.fresh(async (be, log) => {
      await handHistory(log);
      const before = await observable(be, log, 6);
      assert.deepEqual(await be.compact(6, 1000, FAR()), { deleted: 5, done: true });
      assert.deepEqual(await stored(be, 6), ['a@4', 'd@4', 'b@5', 'c@6']);
      assert.deepEqual(await observable(be, log, 6), before);
      const [tombstone] = await be.changes(6, 6, 0);
      assert.equal(tombstone?.deleted, true, 'a watch from 6 still sees the delete at 6');
      const above = await be.changes(7, 9, 0);
      assert.deepEqual(
        above.map((r) => [label(r), r.prev && label(r.prev)]),
        [
          ['a@7', 'a@4'],
          ['e@7', undefined],
          ['d@8', 'd@4'],
          ['b@9', 'b@5'],
        ],
        'rows above the revision keep their prev rows',
      );
      assert.deepEqual(await be.compact(6, 1000, FAR()), { deleted: 0, done: true }, 'again: nothing left');
      assert.deepEqual(await be.compact(4, 1000, FAR()), { deleted: 0, done: true }, 'below a finished one: nothing to do');

      // A later compaction also removes the tombstone the first one had to keep.
      const before8 = await observable(be, log, 8);
      assert.deepEqual(await be.compact(8, 1000, FAR()), { deleted: 3, done: true });
      assert.deepEqual(await stored(be, 9), ['b@5', 'a@7', 'e@7', 'd@8', 'b@9']);
      assert.deepEqual(await observable(be, log, 8), before8);
    }));

  test('compaction of a random history matches the reference at every revision above it', () =>
    suite.fresh(async (be, log) => {
      await randomHistory(log, 60);
      for (const revision of [15, 30, 45]) {
        const before = await observable(be, log, revision);
        const result = await be.compact(revision, 1000, FAR());
        assert.equal(result.done, true);
        assert.deepEqual(await stored(be, revision), survivors(log.rows, revision), `survivors at ${revision}`);
        assert.deepEqual(await observable(be, log, revision), before, `reads at and above ${revision}`);
      }
    }));

  test('small batches stop at a past deadline with done:false and resume to done:true', () =>
    suite.fresh(async (be, log) => {
      await randomHistory(log, 50);
      const revision = 40;
      const expected = survivors(log.rows, revision);
      const toDelete = log.rows.filter((r) => r.modRevision <= revision).length - expected.length;
      assert.ok(toDelete > 10, `the history leaves enough to compact (${toDelete})`);
      const before = await observable(be, log, revision);

      const first = await be.compact(revision, 2, Date.now() - 1);
      assert.equal(first.done, false);
      assert.ok(first.deleted <= 2, `one batch of at most 2 rows (got ${first.deleted})`);
      let total = first.deleted;
      for (let calls = 0; ; calls++) {
        assert.ok(calls < 1000, 'compaction makes progress');
        const r = await be.compact(revision, 2, Date.now() - 1);
        assert.ok(r.deleted <= 2);
        total += r.deleted;
        if (r.done) break;
      }
      assert.equal(total, toDelete);
      assert.deepEqual(await stored(be, revision), expected);
      assert.deepEqual(await observable(be, log, revision), before);
    }));

  test('an interrupted compaction finishes after a restart', () =>
    suite.fresh(async (be, log) => {
      await randomHistory(log, 50);
      const revision = 35;
      const partial = await be.compact(revision, 3, Date.now() - 1);
      assert.equal(partial.done, false);
      await be.close();
      const again = suite.store().backend();
      await again.open();
      try {
        const result = await again.compact(revision, 1000, FAR());
        assert.equal(result.done, true);
        assert.deepEqual(await stored(again, revision), survivors(log.rows, revision));
      } finally {
        await again.close();
      }
    }));
}

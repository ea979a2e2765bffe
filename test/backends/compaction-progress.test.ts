/**
 * The SQL compaction walk's progress (backends/sql/compaction.ts) when a migration copy stores rows behind
 * it: the next walk goes over them, also when the copy commits while a batch runs (the server backends'
 * batches do not hold the write lock).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CompactionProgress, type BatchPlan } from '../../middleware/src/backends/sql/compaction.js';

const batch = (rev: number, finished: boolean): BatchPlan => ({ deletions: [], cursor: { rev, sub: 0 }, finished });

test('a copy behind a finished compaction makes the next one walk from the copied revision', () => {
  const p = new CompactionProgress();
  assert.equal(p.begin(100), true);
  void p.position;
  p.advance(batch(100, true));
  assert.equal(p.isComplete(100), true);

  p.copiedIn(48);
  assert.equal(p.isComplete(47), true, 'a copied row supersedes nothing below its own revision');
  assert.equal(p.isComplete(48), false);
  assert.equal(p.begin(100), true, 'the same revision is walked again');
  assert.deepEqual(p.position, { rev: 48, sub: -1 });
  p.advance(batch(100, true));
  assert.equal(p.isComplete(100), true);

  p.copiedIn(60);
  assert.equal(p.begin(110), true);
  assert.deepEqual(p.position, { rev: 59, sub: -1 }, 'a new target starts at the completed revision, below the copy');
});

test('a batch that ran while a copy committed does not move past the copied rows', () => {
  const p = new CompactionProgress();
  assert.equal(p.begin(100), true);
  assert.deepEqual(p.position, { rev: 0, sub: -1 });
  p.advance(batch(40, false));

  void p.position; // the batch scans from 40 ...
  p.copiedIn(45); // ... a copy commits rows at 45 and above, which its scan may have missed ...
  p.advance(batch(100, true)); // ... and it reaches the end
  assert.equal(p.isComplete(100), false);
  assert.deepEqual(p.position, { rev: 45, sub: -1 });
  p.advance(batch(100, true));
  assert.equal(p.isComplete(100), true);
});

test('a copy between batches costs no batch again', () => {
  const p = new CompactionProgress();
  assert.equal(p.begin(100), true);
  void p.position;
  p.advance(batch(50, false));
  p.copiedIn(45);
  assert.deepEqual(p.position, { rev: 45, sub: -1 });
  p.advance(batch(100, true));
  assert.equal(p.isComplete(100), true);
});

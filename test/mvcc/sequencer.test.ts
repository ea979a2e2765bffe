import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sequencer } from '../../middleware/src/mvcc/sequencer.js';

test('a fresh store is at revision 1 and allocates from 2', () => {
  const s = new Sequencer(0);
  assert.equal(s.watermark, 1);
  assert.equal(s.allocate(), 2);
});

test('the watermark never passes an unfinished revision', () => {
  const s = new Sequencer(10);
  const seen: number[] = [];
  s.onAdvance((w) => seen.push(w));
  const a = s.allocate();
  const b = s.allocate();
  const c = s.allocate();
  s.finish(c);
  assert.equal(s.watermark, 10, 'c finished but a and b are still in flight');
  s.finish(a);
  assert.equal(s.watermark, 11);
  s.finish(b);
  assert.equal(s.watermark, 13);
  assert.deepEqual(seen, [11, 13]);
  assert.deepEqual(s.unfinished, []);
});

test('finishing an unknown revision is a bug, reported loudly', () => {
  const s = new Sequencer(1);
  assert.throws(() => s.finish(7), /not allocated/);
});

test('rewind takes back revisions of a rolled-back transaction: the next write gets the next revision', () => {
  const s = new Sequencer(10);
  const seen: number[] = [];
  s.onAdvance((w) => seen.push(w));
  assert.equal(s.allocate(), 11);
  assert.equal(s.allocate(), 12);
  s.rewind(10);
  assert.equal(s.lastAllocated, 10);
  assert.deepEqual(s.unfinished, []);
  assert.equal(s.allocate(), 11);
  s.finish(11);
  assert.deepEqual(seen, [11]);
  assert.throws(() => s.rewind(10), /revisions up to 11 are visible/);
});

test("a child layer allocates exactly its parent's revisions, strictly increasing, never one twice", () => {
  const s = new Sequencer(5);
  assert.equal(s.allocateAt(9), 9, 'numbers between belong to keys of other layers: skipped');
  s.finish(9);
  assert.equal(s.watermark, 9);
  assert.throws(() => s.allocateAt(9), /not above the last one handed out \(9\)/);
  assert.throws(() => s.allocateAt(7), /never reused/);
  assert.equal(s.allocateAt(12), 12);
  assert.equal(s.allocate(), 13, 'the next own revision follows the last handed down');
});

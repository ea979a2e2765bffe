/** The keyed work queue: dedup, one worker per key, re-processing after a change mid-work, retries, shutdown. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkQueue } from '../../middleware/src/operator/work-queue.js';
import { eventFor, nextStatus, sameStatus } from '../../middleware/src/operator/status.js';

test('a key waits once however often it is added, in first-added order', async () => {
  const q = new WorkQueue();
  for (const k of ['a', 'b', 'a', 'c', 'b']) q.add(k);
  assert.equal(q.length, 3);
  assert.deepEqual([await q.get(), await q.get(), await q.get()], ['a', 'b', 'c']);
});

test('a key added while processed is not handed out twice, and is processed again after done', async () => {
  const q = new WorkQueue();
  q.add('a');
  const key = await q.get();
  q.add('a');
  q.add('b');
  assert.equal(await q.get(), 'b', 'a is being processed, so the next worker gets b');
  assert.equal(q.length, 0);
  q.done(key!);
  assert.equal(await q.get(), 'a');
});

test('a waiting worker gets the next key added', async () => {
  const q = new WorkQueue();
  const pending = q.get();
  q.add('x');
  assert.equal(await pending, 'x');
});

test('retries back off per key, doubling up to the cap, and forget resets them', async () => {
  const q = new WorkQueue({ retryBaseMs: 5, retryMaxMs: 20 });
  assert.deepEqual([q.retry('k'), q.retry('k'), q.retry('k'), q.retry('k')], [5, 10, 20, 20]);
  assert.equal(q.retry('other'), 5);
  q.forget('k');
  assert.equal(q.retry('k'), 5);
  const keepAlive = setInterval(() => {}, 1000); // retry timers are unref'd; keep this process up meanwhile
  assert.equal(await q.get(), 'k', 'the retried key comes back');
  clearInterval(keepAlive);
  q.shutDown();
});

test('shutting down releases waiting workers', async () => {
  const q = new WorkQueue();
  const pending = q.get();
  q.shutDown();
  assert.equal(await pending, undefined);
  q.add('late');
  assert.equal(await q.get(), undefined);
});

test('status: the Ready condition keeps its transition time until it flips; events only on news', () => {
  const t0 = new Date('2025-01-01T00:00:00Z');
  const t1 = new Date('2025-01-01T01:00:00Z');
  const active = nextStatus(undefined, 1, { deployStatus: 'Active', conditionReason: 'Applied', message: 'applied as 0001' }, t0);
  assert.deepEqual(active.conditions, [
    { type: 'Ready', status: 'True', observedGeneration: 1, lastTransitionTime: '2025-01-01T00:00:00Z', reason: 'Applied', message: 'applied as 0001' },
  ]);
  const again = nextStatus(active, 2, { deployStatus: 'Active', conditionReason: 'Applied', message: 'applied as 0002' }, t1);
  assert.equal(again.conditions![0]!.lastTransitionTime, '2025-01-01T00:00:00Z');
  assert.equal(sameStatus(active, nextStatus(active, 1, { deployStatus: 'Active', conditionReason: 'Applied', message: 'applied as 0001' }, t1)), true);
  assert.deepEqual(eventFor(active, again), { type: 'Normal', reason: 'Applied', message: 'applied as 0002' });
  const failed = nextStatus(again, 3, { deployStatus: 'Failed', conditionReason: 'RulesRejected', message: 'bad' }, t1);
  assert.equal(failed.conditions![0]!.status, 'False');
  assert.equal(failed.conditions![0]!.lastTransitionTime, '2025-01-01T01:00:00Z');
  assert.equal(eventFor(again, failed)?.type, 'Warning');
  assert.equal(eventFor(failed, nextStatus(failed, 3, { deployStatus: 'Failed', conditionReason: 'RulesRejected', message: 'bad' }, t1)), undefined);
});

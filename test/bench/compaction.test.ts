/**
 * The compaction row's pure part (bench/compaction-stats.ts): what it reads from etcd's and the middleware's
 * metrics and log, the rates it computes, and how it compares the newest values before and after. Pure: no
 * processes (the row itself runs in `npm run bench -- --compaction-only`).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  compactedLogLine,
  compactionRates,
  etcdCompactionCounters,
  middlewareCompactionCounters,
  newestVersionProblems,
  type NewestVersion,
} from '../../bench/compaction-stats.js';

test("etcd's compaction counters: keys removed, and the duration histogram's sum and count", () => {
  const text = [
    '# TYPE etcd_debugging_mvcc_db_compaction_keys_total counter',
    'etcd_debugging_mvcc_db_compaction_keys_total 190000',
    'etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_bucket{le="100"} 0',
    'etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_sum 2345',
    'etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_count 1',
  ].join('\n');
  assert.deepEqual(etcdCompactionCounters(text), { rows: 190000, ms: 2345, runs: 1 });
  assert.ok(Number.isNaN(etcdCompactionCounters('').rows), 'a missing metric is NaN, never 0');
});

test("the middleware's compacted rows counter", () => {
  const c = middlewareCompactionCounters('# HELP harikube_compacted_rows_total Rows removed by compaction.\nharikube_compacted_rows_total 4000\n');
  assert.equal(c.rows, 4000);
  assert.ok(Number.isNaN(c.ms));
});

test("the middleware's 'compacted' log record of one revision, the last one if several, paused or not", () => {
  const tail = [
    'ompleted","revision":7}', // the tail may start mid-line
    '{"ts":"t","level":"info","msg":"compacted","revision":5,"deletedRows":10,"ms":3}',
    'not json',
    '{"ts":"t","level":"info","msg":"compacted","revision":9,"deletedRows":190000,"ms":11420}',
  ].join('\n');
  assert.deepEqual(compactedLogLine(tail, 9), { deletedRows: 190000, ms: 11420, paused: false });
  assert.deepEqual(compactedLogLine(tail, 5), { deletedRows: 10, ms: 3, paused: false });
  assert.equal(compactedLogLine(tail, 7), undefined);
  const paused = '{"level":"warn","msg":"compaction paused: too slow, the next compaction resumes it","revision":9,"deleted":5}\n{"msg":"compacted","revision":9,"deletedRows":5,"ms":100000}';
  assert.deepEqual(compactedLogLine(paused, 9), { deletedRows: 5, ms: 100000, paused: true });
});

test('rates: rows/s by the server clock, puts while compacting over the idle mean, removed/s over written/s', () => {
  const r = compactionRates(190_000, 10, 500, [900, 1100]);
  assert.equal(r.rowsPerSec, 19_000);
  assert.equal(r.putRatio, 0.5);
  assert.equal(r.churnMultiple, 38);
  assert.equal(r.idleChurnMultiple, 19);
  const none = compactionRates(190_000, 0, 0, []);
  assert.ok(Number.isNaN(none.rowsPerSec) && Number.isNaN(none.putRatio) && Number.isNaN(none.churnMultiple), 'no division by zero passes as a number');
});

test('newest values: identical reads with the right version pass; a lost, changed or extra key fails', () => {
  const v = (mod: string, version = '3', value = 'aa'): NewestVersion => ({ modRevision: mod, version, value });
  const before = new Map([['/k/1', v('10')], ['/k/2', v('11')]]);
  assert.deepEqual(newestVersionProblems(before, new Map(before), 3), []);
  assert.match(newestVersionProblems(before, new Map([['/k/1', v('10')]]), 3).join('\n'), /\/k\/2 is gone/);
  assert.match(newestVersionProblems(before, new Map([['/k/1', v('10')], ['/k/2', v('11', '3', 'bb')]]), 3).join('\n'), /\/k\/2 changed: .*value differs/);
  assert.match(newestVersionProblems(before, new Map([...before, ['/k/3', v('12')]]), 3).join('\n'), /\/k\/3 appeared/);
  assert.match(newestVersionProblems(before, before, 4).join('\n'), /version 3, want 4/);
  const many = new Map(Array.from({ length: 50 }, (_, i) => [`/k/${i}`, v(String(i))] as const));
  assert.equal(newestVersionProblems(many, new Map(), 3, 5).length, 5, 'the list is bounded');
});

/**
 * Which rows one `npm run bench` runs: the loadgen rows and the rows through kube-apiserver in one run by
 * default, narrowed by --rows, --skip-kube and the --*-only flags; contradictions refused.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseFlags } from '../../bench/flags.js';
import { KUBE_ROW_NAMES } from '../../bench/kube.js';
import { ROWS } from '../../bench/rows.js';
import { selectRows } from '../../bench/suite.js';

const select = (...argv: string[]) => {
  const { rows, kubeRows } = selectRows(parseFlags(argv));
  return { rows: rows.map((r) => r.name), kubeRows };
};

test('by default one run has every loadgen row and every kube row', () => {
  assert.deepEqual(select(), { rows: ROWS.map((r) => r.name), kubeRows: [...KUBE_ROW_NAMES] });
  assert.deepEqual(KUBE_ROW_NAMES, ['kube-create-32', 'kube-list-10k', 'kube-watch']);
});

test('--rows splits into loadgen rows and kube rows', () => {
  assert.deepEqual(select('--rows', 'put-1,kube-watch'), { rows: ['put-1'], kubeRows: ['kube-watch'] });
  assert.deepEqual(select('--rows', 'put-1'), { rows: ['put-1'], kubeRows: [] });
  assert.throws(() => select('--rows', 'kube-nope'), /unknown row "kube-nope"/);
});

test('--skip-kube, --kube-only, --memory-only and --migration-only', () => {
  assert.deepEqual(select('--skip-kube'), { rows: ROWS.map((r) => r.name), kubeRows: [] });
  assert.deepEqual(select('--kube-only'), { rows: [], kubeRows: [...KUBE_ROW_NAMES] });
  assert.deepEqual(select('--kube-only', '--rows', 'kube-watch,put-1'), { rows: [], kubeRows: ['kube-watch'] });
  assert.deepEqual(select('--memory-only'), { rows: [], kubeRows: [] });
  assert.deepEqual(select('--migration-only'), { rows: [], kubeRows: [] });
  assert.throws(() => select('--kube-only', '--rows', 'put-1'), /--kube-only with --rows that names no kube row/);
  assert.throws(() => parseFlags(['--kube-only', '--skip-kube']), /exclude each other/);
  assert.throws(() => parseFlags(['--kube-only', '--memory-only']), /exclude each other/);
  assert.throws(() => parseFlags(['--kube-only', '--migration-only']), /exclude each other/);
});

test('--targets takes the layered targets, in the bench order, etcd always first', () => {
  assert.deepEqual(parseFlags(['--targets', 'mw-two-layer,mw-sqlite,mw-routed']).targets, ['etcd', 'mw-sqlite', 'mw-routed', 'mw-two-layer']);
  assert.ok(parseFlags([]).targets.includes('mw-routed') && parseFlags([]).targets.includes('mw-two-layer'), 'a default run drives them beside the others');
  assert.throws(() => parseFlags(['--targets', 'mw-routd']), /--targets: unknown target "mw-routd"/);
});

test('--memory-targets refuses the layered targets (several processes, one RSS)', () => {
  assert.throws(() => parseFlags(['--memory-targets', 'etcd,mw-routed']), /--memory-targets: mw-routed run as several processes/);
  assert.throws(() => parseFlags(['--memory-targets', 'mw-two-layer']), /mw-two-layer run as several processes/);
  assert.deepEqual(parseFlags(['--targets', 'mw-routed']).memoryTargets, ['etcd', 'mw-sqlite'], 'the default memory targets stay single servers');
});

test('--profile-target picks one middleware target to profile (mw-sqlite by default)', () => {
  assert.equal(parseFlags(['--profile', 'put-64']).profileTarget, 'mw-sqlite');
  assert.equal(parseFlags(['--profile', 'put-64', '--profile-target', 'mw-routed']).profileTarget, 'mw-routed');
  assert.throws(() => parseFlags(['--profile-target', 'etcd']), /give one middleware target/);
  assert.throws(() => parseFlags(['--profile-target', 'mw-routed,mw-sqlite']), /give one middleware target/);
  assert.throws(() => parseFlags(['--profile-target', 'mw-nope']), /unknown target "mw-nope"/);
});

test('the compaction row: --compaction-only runs nothing else, its size and servers are checked', () => {
  assert.deepEqual(select('--compaction-only'), { rows: [], kubeRows: [] });
  const d = parseFlags([]);
  assert.deepEqual([d.skipCompaction, d.compactionKeys, d.compactionRevisions, d.compactionTargets], [false, 5_000, 10, ['etcd', 'mw-sqlite', 'mw-postgres', 'mw-mysql']]);
  const f = parseFlags(['--compaction-only', '--compaction-keys', '500', '--compaction-revisions', '3', '--compaction-targets', 'mw-mysql,etcd']);
  assert.deepEqual([f.compactionOnly, f.compactionKeys, f.compactionRevisions, f.compactionTargets], [true, 500, 3, ['etcd', 'mw-mysql']]);
  assert.throws(() => parseFlags(['--compaction-only', '--skip-compaction']), /exclude each other/);
  assert.throws(() => parseFlags(['--compaction-only', '--migration-only']), /exclude each other/);
  assert.throws(() => parseFlags(['--compaction-revisions', '1']), /at least 2/);
  assert.throws(() => parseFlags(['--compaction-keys', '0']), /--compaction-keys/);
  assert.throws(() => parseFlags(['--compaction-targets', 'kine-sqlite']), /--compaction-targets: "kine-sqlite" is not one of/);
});

/**
 * `tsx bench/markdown.ts bench/results/<run>.json`: the README's benchmark tables from one run's results
 * (throughput with ratios, latencies, CPU seconds of server and load generator, RSS), so the README's
 * figures are copied from a run, never typed.
 */
import { readFile } from 'node:fs/promises';
import type { CompactionResult } from './compaction.js';
import { KUBE_ROWS, type KubeMeasurement } from './kube.js';
import type { Measurement } from './measure.js';
import type { MemoryResult } from './memory.js';
import type { MigrationResult } from './migration.js';
import { LATENCY_ROWS } from './rows.js';
import { ALL_TARGETS, type TargetName } from './servers.js';
import type { SuiteResult } from './suite.js';

const TITLES: Record<TargetName, string> = {
  etcd: 'etcd 3.4',
  'etcd-3.6': 'etcd 3.6',
  'kine-sqlite': 'kine SQLite',
  'kine-postgres': 'kine PostgreSQL',
  'mw-sqlite': 'HariKube SQLite',
  'mw-postgres': 'HariKube PostgreSQL',
  'mw-mysql': 'HariKube MariaDB',
  'mw-routed': 'HariKube routed (SQLite, PostgreSQL, etcd, child)',
  'mw-two-layer': 'HariKube two layers (SQLite)',
};
const KINE_PEER: Partial<Record<TargetName, TargetName>> = { 'mw-sqlite': 'kine-sqlite', 'mw-postgres': 'kine-postgres' };

const n = (v: number): string => (Number.isFinite(v) ? (Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(1)) : '-');
const ms = (v: number): string => (Number.isFinite(v) ? (v >= 100 ? Math.round(v).toString() : v.toFixed(1)) : '-');

function table(header: string[], rows: string[][]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

export function markdown(result: SuiteResult): string {
  const ms_ = result.measurements;
  const targets = ALL_TARGETS.filter((t) => ms_.some((m) => m.target === t));
  const rows = [...new Set(ms_.map((m) => m.row))];
  const find = (row: string, t: TargetName): Measurement | undefined => ms_.find((m) => m.row === row && m.target === t);
  const failed = (row: string, t: TargetName): string => {
    const why = result.skipped.find((s) => s.startsWith(`${row} on ${t}:`));
    return why ? (/Unimplemented/.test(why) ? 'refused' : 'failed') : '';
  };

  const throughput = rows.map((row) => [
    row,
    ...targets.map((t) => {
      const m = find(row, t);
      if (!m) return failed(row, t);
      const latency = LATENCY_ROWS.has(row);
      const value = latency ? `p99 ${ms(m.p99Ms)} ms` : n(m.opsPerSec);
      if (t === 'etcd' || m.errors) return value + (m.errors ? ` (${m.errors} errors)` : '');
      const ratio = (ref: Measurement | undefined) => (!ref || ref.errors ? undefined : latency ? m.p99Ms / ref.p99Ms : m.opsPerSec / ref.opsPerSec);
      const parts = [ratio(find(row, 'etcd')), KINE_PEER[t] ? ratio(find(row, KINE_PEER[t]!)) : undefined];
      const [xe, xk] = parts.map((p) => (p === undefined ? undefined : p.toFixed(2)));
      return `${value} (${[xe && `${xe}x etcd`, xk && `${xk}x kine`].filter(Boolean).join(', ')})`;
    }),
  ]);
  const latency = rows.map((row) => [row, ...targets.map((t) => {
    const m = find(row, t);
    return m ? `${ms(m.p50Ms)} / ${ms(m.p99Ms)}` : failed(row, t);
  })]);
  const cpu = rows.map((row) => [row, ...targets.map((t) => {
    const m = find(row, t);
    const parent = m?.processCpuSeconds?.parent;
    return m ? `${m.serverCpuSeconds.toFixed(1)} / ${m.cpuSeconds.toFixed(1)}${parent === undefined ? '' : ` (parent ${parent.toFixed(1)})`}` : failed(row, t);
  })]);
  const header = ['row', ...targets.map((t) => TITLES[t])];
  const out = !rows.length ? [] : [
    '**Throughput, ops/s** (watch row: p99 ms; ratios: to etcd 3.4 and, for HariKube, to kine on the same database; watch ratios are of p99, lower is better)',
    '',
    table(header, throughput),
    '',
    '**Latency, p50 / p99 ms**',
    '',
    table(header, latency),
    '',
    '**CPU seconds over the measured phase, server / load generator** (5 s for the closed-loop rows; one core for 5 s = 5.0; a layered target\'s server is all its processes, its parent middleware in brackets)',
    '',
    table(header, cpu),
  ];
  if (result.memory.length) out.push('', '**RSS with keys of 1 KiB, settled (MiB)**', '', memoryTable(result.memory));
  if (result.kube?.length) out.push('', '**Through kube-apiserver, on etcd and on HariKube SQLite** (ratio as the floor judges it, >= 0.8 passes: HariKube / etcd ops/s; for the watch row etcd p99 / HariKube p99)', '', kubeTable(result.kube));
  if (result.migration) out.push('', migrationTable(result.migration));
  if (result.compaction) out.push('', compactionTable(result.compaction));
  return out.join('\n').replace(/^\n+/, '');
}

function kubeTable(kube: KubeMeasurement[]): string {
  const cell = (m: KubeMeasurement | undefined, latency: boolean) =>
    !m ? '-' : (latency ? `p50 ${ms(m.p50Ms)} ms, p99 ${ms(m.p99Ms)} ms` : `${n(m.opsPerSec)} ops/s (p99 ${ms(m.p99Ms)} ms)`) + (m.errors ? ` (${m.errors} errors)` : '');
  return table(
    ['row', 'on etcd', 'on HariKube SQLite', 'ratio'],
    KUBE_ROWS.filter((r) => kube.some((m) => m.row === r.name)).map(({ name, what, latency }) => {
      const e = kube.find((m) => m.row === name && m.target === 'kube/etcd');
      const w = kube.find((m) => m.row === name && m.target === 'kube/mw-sqlite');
      const ratio = e && w && !e.errors && !w.errors ? (latency ? e.p99Ms / w.p99Ms : w.opsPerSec / e.opsPerSec).toFixed(2) : '-';
      return [`${name} (${what})`, cell(e, latency), cell(w, latency), ratio];
    }),
  );
}

/** The migration row: keys/s moved and API puts while moving, per --migration-rate. */
export function migrationTable(m: MigrationResult): string {
  const title =
    `**Online migration: ${m.keys.toLocaleString('en-US')} keys of ${m.valueBytes === 1024 ? '1 KiB' : `${m.valueBytes} B`} moved from SQLite to PostgreSQL** ` +
    `(HariKube, default backend SQLite; ${m.putRow} puts on keys that stay: idle before the change, while keys move, idle after the move)`;
  const rows = m.runs.map((r) => {
    const rate = r.rate ? `${r.rate.toLocaleString('en-US')} keys/s (default)` : 'unlimited (0)';
    if (r.error) return [rate, 'failed', '', '', '', '', ''];
    return [
      rate,
      `${n(r.keysPerSec)} keys/s (${n(r.moveSeconds)} s)`,
      `${n(r.idle.opsPerSec)} / ${n(r.idleAfter.opsPerSec)} (p99 ${ms(r.idle.p99Ms)} / ${ms(r.idleAfter.p99Ms)} ms)`,
      `${n(r.during.opsPerSec)} (p99 ${ms(r.during.p99Ms)} ms)`,
      `${r.ratio.toFixed(2)}x${r.overlapped ? '' : ' (not entirely during the move)'}`,
      r.serverCores.toFixed(2),
      // the generator must not be the bottleneck: its own CPU beside the server's, over the same phase
      `${r.during.serverCpuSeconds.toFixed(1)} / ${r.during.cpuSeconds.toFixed(1)}`,
    ];
  });
  const headers = ['--migration-rate', 'moved', 'puts/s idle before / after', 'puts/s while moving', 'while moving / idle (mean)', 'server cores during the move', 'CPU s while moving: server / loadgen'];
  return [title, '', table(headers, rows)].join('\n');
}

/** The compaction row: stale rows removed/s under put load, the puts meanwhile, and whether the checks held. */
export function compactionTable(c: CompactionResult): string {
  const title =
    `**Compaction under write load: ${c.keys.toLocaleString('en-US')} keys of ${c.valueBytes === 1024 ? '1 KiB' : `${c.valueBytes} B`} written ${c.revisions} times ` +
    `(${c.staleRows.toLocaleString('en-US')} stale rows), then Compact at the head (physical) while ${c.putRow} writes new keys** ` +
    `(rows/s by the server's own count and clock; x churn = rows removed/s / rows the puts wrote/s meanwhile, above 1 compaction outruns that churn, and / the idle put rate; ` +
    `checked afterwards: an old revision answers "compacted", exactly the stale rows were removed, every key keeps its newest value)`;
  const rows = c.runs.map((r) => {
    if (r.error) return [TITLES[r.target], 'failed', '', '', '', '', '', ''];
    return [
      TITLES[r.target],
      `${n(r.rowsPerSec)} rows/s (${n(r.serverSeconds)} s)`,
      n(r.wallSeconds),
      `${n(r.idle.opsPerSec)} / ${n(r.idleAfter.opsPerSec)}`,
      `${n(r.during.opsPerSec)} (p99 ${ms(r.during.p99Ms)} ms)`,
      `${r.putRatio.toFixed(2)}x${r.overlapped ? '' : ' (not entirely during the compaction)'}`,
      `${n(r.churnMultiple)}x / ${n(r.idleChurnMultiple)}x`,
      r.problems.length ? `failed: ${r.problems.join('; ')}` : 'passed',
    ];
  });
  const headers = ['server', 'stale rows removed', 'Compact wall s', 'puts/s idle before / after', 'puts/s while compacting', 'while compacting / idle (mean)', 'x churn: while compacting / idle', 'checks'];
  return [title, '', table(headers, rows)].join('\n');
}

function memoryTable(memory: MemoryResult[]): string {
  const sizes = [...new Set(memory.flatMap((m) => m.steps.map((s) => s.keys)))].sort((a, b) => a - b);
  return table(
    ['server', 'idle', ...sizes.map((s) => `${s.toLocaleString('en-US')} keys`)],
    memory.map((m) => [
      TITLES[m.target],
      (m.rssIdleBytes / 2 ** 20).toFixed(0),
      ...sizes.map((s) => {
        const step = m.steps.find((x) => x.keys === s);
        return step ? (step.rssSettledBytes / 2 ** 20).toFixed(0) : m.error ? 'failed' : '-';
      }),
    ]),
  );
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: tsx bench/markdown.ts bench/results/<run>.json\n');
    process.exit(2);
  }
  process.stdout.write(markdown(JSON.parse(await readFile(file, 'utf8')) as SuiteResult) + '\n');
}

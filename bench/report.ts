/** The printed table, the floor verdicts and the JSON file in bench/results/. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CompactionResult } from './compaction.js';
import type { FloorResult } from './floors.js';
import { processSplit, type Measurement } from './measure.js';
import type { MemoryResult } from './memory.js';
import type { MigrationResult } from './migration.js';
import { LATENCY_ROWS } from './rows.js';

export const RESULTS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');

const MIB = 1024 * 1024;

function fmt(v: number | undefined | null, digits = 2): string {
  if (v === undefined || v === null || !Number.isFinite(v)) return '-';
  if (Math.abs(v) >= 1000) return Math.round(v).toString();
  return v.toFixed(digits);
}

function pad(cells: string[], widths: number[]): string {
  return cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
}

/** The kine run on the same database as a middleware target, for the "x kine" column. */
const KINE_PEER: Partial<Record<string, string>> = { 'mw-sqlite': 'kine-sqlite', 'mw-postgres': 'kine-postgres' };

/**
 * One line per (row, target). "x etcd" and "x kine" are ops/s ratios (for latency rows: p99 ratios, lower is
 * better) to etcd 3.4 and, for the middleware, to kine on the same database; CPU seconds are over the
 * measured phase, for the server and for the load generator.
 */
export function formatTable(ms: Measurement[]): string {
  const header = ['row', 'target', 'ops/s', 'p50 ms', 'p99 ms', 'x etcd', 'x kine', 'srv cpu s', 'srv cores', 'srv us/op', 'gen cpu s', 'gen cores', 'batch', 'commit ms', 'errors'];
  const lines: string[][] = [];
  const ratio = (m: Measurement, ref: Measurement | undefined) =>
    !ref || ref === m ? '' : LATENCY_ROWS.has(m.row) ? fmt(m.p99Ms / ref.p99Ms) : fmt(m.opsPerSec / ref.opsPerSec);
  for (const m of ms) {
    const etcd = ms.find((e) => e.row === m.row && e.target === 'etcd');
    const kine = ms.find((e) => e.row === m.row && e.target === KINE_PEER[m.target]);
    lines.push([
      m.row,
      m.target,
      fmt(m.opsPerSec, 0),
      fmt(m.p50Ms),
      fmt(m.p99Ms),
      ratio(m, etcd),
      ratio(m, kine),
      fmt(m.serverCpuSeconds),
      fmt(m.serverCores),
      fmt(m.serverCpuUsPerOp, 0),
      fmt(m.cpuSeconds),
      fmt(m.clientCores),
      m.avgWriteBatch === undefined ? '' : fmt(m.avgWriteBatch, 1),
      m.avgCommitMs === undefined ? '' : fmt(m.avgCommitMs),
      m.errors ? String(m.errors) : '',
    ]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  // a layered target's server CPU by process: its parent is one event loop, the others are its backends
  const split = ms.filter((m) => m.processCpuSeconds).map((m) => `${m.row} ${m.target}: server cpu${processSplit(m)}`);
  return [pad(header, widths), ...lines.map((l) => pad(l, widths)), ...(split.length ? ['', ...split] : [])].join('\n');
}

export function formatMemory(results: MemoryResult[]): string {
  const out: string[] = [];
  for (const m of results) {
    out.push(`memory of ${m.target} (keys of ${m.valueBytes} B): RSS idle ${(m.rssIdleBytes / MIB).toFixed(1)} MiB` + (m.error ? `; FAILED: ${m.error}` : ''));
    for (const s of m.steps) {
      out.push(
        `  ${String(s.keys).padStart(8)} keys: RSS settled ${(s.rssSettledBytes / MIB).toFixed(1)} MiB (${(s.rssSettledBytes / 1e6).toFixed(0)} MB), ` +
          `after load ${(s.rssAfterLoadBytes / MIB).toFixed(1)} MiB, peak ${(s.peakRssBytes / MIB).toFixed(1)} MiB; ` +
          `loaded at ${Math.round(s.keysPerSec)} keys/s (loadgen ${s.loadgenCpuSeconds.toFixed(1)} cpu s)` +
          (s.node
            ? `; V8 heap ${(s.node.heapTotalBytes / MIB).toFixed(1)} MiB, external ${(s.node.externalBytes / MIB).toFixed(1)} MiB, ` +
              `rest (native: SQLite caches, code, malloc) ${((s.rssSettledBytes - s.node.heapTotalBytes - s.node.externalBytes) / MIB).toFixed(1)} MiB`
            : ''),
      );
    }
  }
  return out.join('\n');
}

export function formatMigration(m: MigrationResult): string {
  const out = [`migration: ${m.keys} keys x ${m.valueBytes} B moved online from ${m.from} to ${m.to}; ${m.putRow} on keys that stay, idle and while keys move`];
  for (const r of m.runs) {
    const rate = r.rate ? `--migration-rate ${r.rate}` : '--migration-rate 0 (unlimited)';
    if (r.error) {
      out.push(`  ${rate}: FAILED: ${r.error}`);
      continue;
    }
    out.push(
      `  ${rate}: ${Math.round(r.keysPerSec)} keys/s moved (${r.keysMoved} keys in ${r.moveSeconds.toFixed(1)} s, ${r.wallSeconds.toFixed(1)} s from the change; server ${r.serverCores.toFixed(2)} cores); ` +
        `puts ${Math.round(r.idle.opsPerSec)}/s idle before (p99 ${fmt(r.idle.p99Ms)} ms), ${Math.round(r.during.opsPerSec)}/s while moving (p99 ${fmt(r.during.p99Ms)} ms), ` +
        `${Math.round(r.idleAfter.opsPerSec)}/s idle after (p99 ${fmt(r.idleAfter.p99Ms)} ms) = ${r.ratio.toFixed(2)}x idle` +
        (r.overlapped ? '' : ' (NOT measured entirely during the move)'),
    );
  }
  return out.join('\n');
}

export function formatCompaction(c: CompactionResult): string {
  const out = [
    `compaction: ${c.keys} keys x ${c.revisions} revisions of ${c.valueBytes} B (${c.staleRows} stale rows), Compact(head, physical) while ${c.putRow} writes new keys; ` +
      'rows/s by the server\'s own count and clock; x churn = rows removed/s / rows the puts wrote/s meanwhile (> 1: compaction outruns that churn), and / the idle put rate',
  ];
  for (const r of c.runs) {
    if (r.error) {
      out.push(`  ${r.target}: FAILED: ${r.error}`);
      continue;
    }
    out.push(
      `  ${r.target}: ${Math.round(r.rowsPerSec)} rows/s removed (${r.rowsRemoved} rows in ${r.serverSeconds.toFixed(2)} s by ${r.clock}; Compact ${r.wallSeconds.toFixed(2)} s wall, server ${r.serverCores.toFixed(2)} cores); ` +
        `puts ${Math.round(r.idle.opsPerSec)}/s idle before, ${Math.round(r.during.opsPerSec)}/s while compacting (p99 ${fmt(r.during.p99Ms)} ms), ${Math.round(r.idleAfter.opsPerSec)}/s idle after = ${r.putRatio.toFixed(2)}x idle` +
        (r.overlapped ? '' : ' (NOT measured during the whole compaction)') +
        `; ${fmt(r.churnMultiple, 1)}x churn (${fmt(r.idleChurnMultiple, 1)}x the idle put rate); history written at ${Math.round(r.historyRowsPerSec)} rows/s; ${r.phaseSeconds.toFixed(0)} s in all` +
        (r.storedRowsBefore === undefined ? '' : `; rows under the prefix ${r.storedRowsBefore} -> ${r.storedRowsAfter ?? '-'}`) +
        `; ${r.problems.length ? `CHECKS FAILED: ${r.problems.join('; ')}` : 'checks passed'}`,
    );
  }
  return out.join('\n');
}

export function formatFloors(floors: FloorResult[]): string {
  return floors
    .map((f) => {
      const verdict = f.pass === null ? 'SKIP' : f.pass ? 'PASS' : 'FAIL';
      const value = f.value === null ? (f.note ?? '-') : `${fmt(f.value)} ${f.unit}`;
      return `${verdict}  ${f.floor.padEnd(52)} ${value}`;
    })
    .join('\n');
}

/** Writes `data` to bench/results/<name>.json and returns the path. */
export async function writeResults(name: string, data: unknown): Promise<string> {
  await mkdir(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `${name}.json`);
  await writeFile(file, JSON.stringify(data, null, 2) + '\n');
  return file;
}

/** A file-name-safe timestamp, e.g. 2025-01-31T12-00-00Z. */
export function timestamp(d = new Date()): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-');
}

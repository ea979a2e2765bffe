/** The printed table, the floor verdicts and the JSON file in bench/results/. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FloorResult } from './floors.js';
import type { Measurement } from './measure.js';
import type { MemoryResult } from './memory.js';

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

/** One line per (row, target); middleware lines carry ratios to etcd's line of the same row. */
export function formatTable(ms: Measurement[]): string {
  const header = ['row', 'target', 'ops/s', 'p50 ms', 'p99 ms', 'thr x', 'p50 x', 'p99 x', 'srv us/op', 'srv cores', 'cli cores', 'batch', 'commit ms', 'errors'];
  const lines: string[][] = [];
  for (const m of ms) {
    const etcd = ms.find((e) => e.row === m.row && e.target === 'etcd');
    const ref = m.target !== 'etcd' && etcd ? etcd : undefined;
    lines.push([
      m.row,
      m.target,
      fmt(m.opsPerSec, 0),
      fmt(m.p50Ms),
      fmt(m.p99Ms),
      ref ? fmt(m.opsPerSec / ref.opsPerSec) : '',
      ref ? fmt(m.p50Ms / ref.p50Ms) : '',
      ref ? fmt(m.p99Ms / ref.p99Ms) : '',
      fmt(m.serverCpuUsPerOp, 0),
      fmt(m.serverCores),
      fmt(m.clientCores),
      m.avgWriteBatch === undefined ? '' : fmt(m.avgWriteBatch, 1),
      m.avgCommitMs === undefined ? '' : fmt(m.avgCommitMs),
      m.errors ? String(m.errors) : '',
    ]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  return [pad(header, widths), ...lines.map((l) => pad(l, widths))].join('\n');
}

export function formatMemory(m: MemoryResult): string {
  return (
    `memory (${m.target}, ${m.keys} keys x ${m.valueBytes} B): loaded in ${m.loadSeconds.toFixed(1)} s ` +
    `(${Math.round(m.keysPerSec)} keys/s); RSS idle before load ${(m.rssIdleBytes / MIB).toFixed(1)} MiB, after load ${(m.rssAfterLoadBytes / MIB).toFixed(1)} MiB, ` +
    `settled ${(m.rssSettledBytes / MIB).toFixed(1)} MiB, peak ${(m.peakRssBytes / MIB).toFixed(1)} MiB` +
    (m.node
      ? `\n  of the settled RSS: V8 heap ${(m.node.heapTotalBytes / MIB).toFixed(1)} MiB (used ${(m.node.heapUsedBytes / MIB).toFixed(1)}), ` +
        `external ${(m.node.externalBytes / MIB).toFixed(1)} MiB, rest (native: SQLite page caches, code, malloc) ` +
        `${((m.rssSettledBytes - m.node.heapTotalBytes - m.node.externalBytes) / MIB).toFixed(1)} MiB`
      : '')
  );
}

export function formatFloors(floors: FloorResult[]): string {
  return floors
    .map((f) => {
      const verdict = f.pass === null ? 'SKIP' : f.pass ? 'PASS' : 'FAIL';
      const value = f.value === null ? (f.note ?? '-') : `${fmt(f.value)} ${f.unit}`;
      return `${verdict}  ${f.floor.padEnd(48)} ${value}`;
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

/** Runs one row against one server with the Go load generator; server CPU is sampled over the measured phase only. */
import { randomBytes } from 'node:crypto';
import { runLoadgen, type LoadgenResult } from './loadgen.js';
import { batchStats, writeCounters, type WriteCounters } from './metrics.js';
import { cpuSeconds } from './procfs.js';
import type { Row } from './rows.js';
import type { BenchServer, TargetName } from './servers.js';

export interface Measurement extends LoadgenResult {
  row: string;
  target: TargetName;
  /** Server CPU (user+sys) seconds over the measured phase. */
  serverCpuSeconds: number;
  /** Server CPU per operation, µs: above ~1e6/ops-per-s the server used more than one core. */
  serverCpuUsPerOp: number;
  /** Server CPU seconds / wall seconds of the measurement (1.0 = one core busy). */
  serverCores: number;
  /**
   * Layered targets: CPU seconds of each of their processes over the measured phase (`parent`, then the
   * helpers' labels), which add up to serverCpuSeconds. The parent is one event loop: near 5 s in a 5 s
   * row, it is the limit.
   */
  processCpuSeconds?: Record<string, number>;
  /** Middleware only: client writes per database transaction, and ms per batch (apply + commit). */
  avgWriteBatch?: number;
  avgCommitMs?: number;
  /** Monotonic-clock window of the measurement (µs, same clock as V8 profile timestamps). */
  windowUs: [number, number];
}

function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** Keys of each (row, target) run live under their own prefix, so runs never see each other's data. */
export function rowPrefix(row: string): string {
  return `/registry/bench/${row}-${randomBytes(3).toString('hex')}/`;
}

export async function measureRow(row: Row, server: BenchServer): Promise<Measurement> {
  let cpu0: number[] = [];
  let cpu1: number[] = [];
  let t0 = 0;
  let t1 = 0;
  let counters0: Promise<WriteCounters | undefined> | undefined;
  let counters1: Promise<WriteCounters | undefined> | undefined;
  const keys = server.keyArgs?.(row.name) ?? ['--prefix', rowPrefix(row.name)];
  // a layered target is several processes: the CPU of all of them is the server's
  const processes = [{ pid: server.pid, label: 'parent' }, ...(server.helpers ?? [])];
  const serverCpu = () => processes.map((p) => cpuSeconds(p.pid));
  const result = await runLoadgen([...row.args, '--endpoint', server.address, ...keys], row.timeoutMs, {
    onStart: () => {
      t0 = monotonicUs();
      cpu0 = serverCpu();
      if (server.metricsUrl) counters0 = writeCounters(server.metricsUrl);
    },
    onEnd: () => {
      t1 = monotonicUs();
      cpu1 = serverCpu();
      if (server.metricsUrl) counters1 = writeCounters(server.metricsUrl);
    },
  });
  const perProcess = processes.map((p, i) => [p.label, cpu1[i]! - cpu0[i]!] as const);
  const serverCpuSeconds = perProcess.reduce((sum, [, s]) => sum + s, 0);
  const batches = counters0 && counters1 ? batchStats(await counters0, await counters1) : undefined;
  return {
    ...result,
    row: row.name,
    target: server.target,
    serverCpuSeconds,
    serverCpuUsPerOp: result.ops ? (serverCpuSeconds * 1e6) / result.ops : NaN,
    serverCores: serverCpuSeconds / result.seconds,
    windowUs: [t0, t1],
    ...(processes.length > 1 ? { processCpuSeconds: Object.fromEntries(perProcess) } : {}),
    ...(batches ? { avgWriteBatch: batches.avgBatch, avgCommitMs: batches.avgCommitMs } : {}),
  };
}

/** ` (parent 4.31 s, child 1.10 s, etcd 0.82 s)` for a layered target, else nothing. */
export function processSplit(m: Measurement): string {
  const p = m.processCpuSeconds;
  return p ? ` (${Object.entries(p).map(([label, s]) => `${label} ${s.toFixed(2)} s`).join(', ')})` : '';
}

/** Runs one row against one server: prepare, warm up, then measure with CPU sampled around the measurement. */
import { randomBytes } from 'node:crypto';
import { batchStats, writeCounters } from './metrics.js';
import { cpuSeconds } from './procfs.js';
import type { BenchServer, TargetName } from './servers.js';
import type { RowResult, Workload } from './workload.js';

export interface Measurement extends RowResult {
  row: string;
  target: TargetName;
  /** Server CPU (user+sys) per operation, µs: above ~1e6/ops-per-s the server used more than one core. */
  serverCpuUsPerOp: number;
  /** Server CPU seconds / wall seconds of the measurement (1.0 = one core busy). */
  serverCores: number;
  /** The bench client's own CPU seconds / wall seconds: near 1.0 means the client was the limit. */
  clientCores: number;
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

export async function measureRow(workload: Workload, server: BenchServer): Promise<Measurement> {
  const prepared = await workload.prepare(server.address, rowPrefix(workload.name));
  try {
    await prepared.warmup();
    const counters0 = server.metricsUrl ? await writeCounters(server.metricsUrl) : undefined;
    const cpu0 = cpuSeconds(server.pid);
    const client0 = process.cpuUsage();
    const t0 = monotonicUs();
    const result = await prepared.measure();
    const t1 = monotonicUs();
    const serverCpu = cpuSeconds(server.pid) - cpu0;
    const client = process.cpuUsage(client0);
    const wall = (t1 - t0) / 1e6;
    const batches = server.metricsUrl ? batchStats(counters0, await writeCounters(server.metricsUrl)) : undefined;
    return {
      ...result,
      row: workload.name,
      target: server.target,
      serverCpuUsPerOp: result.ops ? (serverCpu * 1e6) / result.ops : NaN,
      serverCores: serverCpu / wall,
      clientCores: (client.user + client.system) / 1e6 / wall,
      windowUs: [t0, t1],
      ...(batches ? { avgWriteBatch: batches.avgBatch, avgCommitMs: batches.avgCommitMs } : {}),
    };
  } finally {
    await prepared.close();
  }
}

/**
 * The middleware's own view of a row, from its Prometheus /metrics: how many client writes each database
 * transaction carried (group commit at work or not) and how long a batch took to apply and commit. Read
 * before and after the measurement; the difference covers the row alone.
 */
export interface WriteCounters {
  batches: number;
  writes: number;
  commitSeconds: number;
}

/** The value of the first sample of metric `name` (any labels) in Prometheus text, NaN when absent. */
export function metricValue(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

export async function writeCounters(metricsUrl: string): Promise<WriteCounters | undefined> {
  try {
    const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(5_000) });
    const text = await res.text();
    return {
      batches: metricValue(text, 'harikube_write_batch_size_count'),
      writes: metricValue(text, 'harikube_write_batch_size_sum'),
      commitSeconds: metricValue(text, 'harikube_write_batch_seconds_sum'),
    };
  } catch {
    return undefined;
  }
}

/** Average writes per batch and average batch time (ms) between two readings; undefined without batches. */
export function batchStats(before: WriteCounters | undefined, after: WriteCounters | undefined): { avgBatch: number; avgCommitMs: number } | undefined {
  if (!before || !after) return undefined;
  const batches = after.batches - before.batches;
  if (!(batches > 0)) return undefined;
  return {
    avgBatch: (after.writes - before.writes) / batches,
    avgCommitMs: ((after.commitSeconds - before.commitSeconds) * 1000) / batches,
  };
}

export interface MemoryBreakdown {
  heapUsedBytes: number;
  heapTotalBytes: number;
  /** Buffers and other memory V8 tracks outside its heap. */
  externalBytes: number;
}

/** Where the RSS goes, as far as Node knows (the rest is native: SQLite page caches, code, malloc arenas). */
export async function memoryBreakdown(metricsUrl: string): Promise<MemoryBreakdown | undefined> {
  try {
    const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(5_000) });
    const text = await res.text();
    return {
      heapUsedBytes: metricValue(text, 'nodejs_heap_size_used_bytes'),
      heapTotalBytes: metricValue(text, 'nodejs_heap_size_total_bytes'),
      externalBytes: metricValue(text, 'nodejs_external_memory_bytes'),
    };
  } catch {
    return undefined;
  }
}

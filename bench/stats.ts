/** Latency samples -> the numbers the table prints. Latencies are milliseconds (performance.now deltas). */

export interface Summary {
  ops: number;
  errors: number;
  seconds: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

/** Nearest-rank percentile of sorted samples (q in 0..1); NaN when there are none. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

/**
 * `ops` completed operations in `seconds`; latencies are per operation (or, for watch rows, per delivered
 * event), so the two counts can differ.
 */
export function summarize(latenciesMs: number[], ops: number, seconds: number, errors = 0): Summary {
  const sorted = Float64Array.from(latenciesMs).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    ops,
    errors,
    seconds,
    opsPerSec: seconds > 0 ? ops / seconds : 0,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    maxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
    meanMs: sorted.length ? sum / sorted.length : NaN,
  };
}

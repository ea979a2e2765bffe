/**
 * The pure part of the compaction phase (bench/compaction.ts): what a server says about its own compactions
 * (etcd's and the middleware's metrics, the middleware's log line) and the rates computed from it. Kept apart
 * so a broken parse or ratio fails a unit test (test/bench/compaction.test.ts), not a 3-minute run.
 */
import { metricValue } from './metrics.js';

/** Cumulative compaction counters a server exports on /metrics. */
export interface CompactionCounters {
  /** Rows (key revisions) removed by compaction so far. */
  rows: number;
  /** Milliseconds spent compacting so far (etcd only: the middleware's duration is in its log line). */
  ms: number;
  /** Compactions finished so far (etcd only). */
  runs: number;
}

/** etcd 3.4+ (mvcc/metrics.go): keys removed, and a histogram of each compaction's total duration. */
export function etcdCompactionCounters(metricsText: string): CompactionCounters {
  return {
    rows: metricValue(metricsText, 'etcd_debugging_mvcc_db_compaction_keys_total'),
    ms: metricValue(metricsText, 'etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_sum'),
    runs: metricValue(metricsText, 'etcd_debugging_mvcc_db_compaction_total_duration_milliseconds_count'),
  };
}

/** The middleware (middleware/src/mvcc/metrics.ts): rows removed; it counts no duration. */
export function middlewareCompactionCounters(metricsText: string): CompactionCounters {
  return { rows: metricValue(metricsText, 'harikube_compacted_rows_total'), ms: NaN, runs: NaN };
}

/** The middleware's own account of one physical compaction, from its JSON log (middleware/src/mvcc/compaction.ts). */
export interface CompactedLogLine {
  deletedRows: number;
  /** From the first removal step to the last, by the server's clock. */
  ms: number;
  /** It stopped before removing everything ("compaction paused: too slow"). */
  paused: boolean;
}

/**
 * The last `compacted` record for `revision` in a JSON log (`--log-format json`, one record per line; other
 * lines ignored), and whether a `compaction paused` warning for it came before. Undefined when not there.
 */
export function compactedLogLine(log: string, revision: number): CompactedLogLine | undefined {
  let found: CompactedLogLine | undefined;
  let paused = false;
  for (const line of log.split('\n')) {
    if (!line.startsWith('{')) continue;
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // the tail may start mid-line
    }
    if (Number(rec.revision) !== revision || typeof rec.msg !== 'string') continue;
    if (rec.msg.startsWith('compaction paused')) paused = true;
    if (rec.msg === 'compacted') found = { deletedRows: Number(rec.deletedRows), ms: Number(rec.ms), paused };
  }
  return found;
}

export interface CompactionRates {
  /** Rows removed per second of the server's own compaction time. */
  rowsPerSec: number;
  /** Puts/s while compacting / the mean of the idle runs (before and after). */
  putRatio: number;
  /** Rows removed per second / rows the put load wrote per second while compacting (> 1: compaction outruns the churn). */
  churnMultiple: number;
  /** The same against the idle put rate: would compaction outrun churn at the rate the server takes when not compacting. */
  idleChurnMultiple: number;
}

/**
 * `removedRows` in `serverSeconds`; the put load did `duringOpsPerSec` puts/s (one row each) while it ran,
 * and `idleOpsPerSec` in its idle runs. NaN where an input is missing or zero.
 */
export function compactionRates(removedRows: number, serverSeconds: number, duringOpsPerSec: number, idleOpsPerSec: number[]): CompactionRates {
  const div = (a: number, b: number) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN);
  const rowsPerSec = div(removedRows, serverSeconds);
  const idle = idleOpsPerSec.length ? idleOpsPerSec.reduce((s, v) => s + v, 0) / idleOpsPerSec.length : NaN;
  return { rowsPerSec, putRatio: div(duringOpsPerSec, idle), churnMultiple: div(rowsPerSec, duringOpsPerSec), idleChurnMultiple: div(rowsPerSec, idle) };
}

/** A key's newest version as a Range at the head shows it. */
export interface NewestVersion {
  modRevision: string;
  version: string;
  /** A digest of the value (sha256, hex). */
  value: string;
}

/**
 * What changed between two reads of the same keys at the head, at most `limit` lines: keys missing or
 * added, and keys whose mod revision, version or value differ; and any key whose version is not `version`.
 */
export function newestVersionProblems(before: ReadonlyMap<string, NewestVersion>, after: ReadonlyMap<string, NewestVersion>, version: number, limit = 5): string[] {
  const out: string[] = [];
  const add = (s: string) => void (out.length < limit && out.push(s));
  if (after.size !== before.size) add(`${after.size} keys after the compaction, ${before.size} before`);
  for (const [key, b] of before) {
    const a = after.get(key);
    if (!a) add(`${key} is gone`);
    else if (a.modRevision !== b.modRevision || a.version !== b.version || a.value !== b.value)
      add(`${key} changed: mod revision ${b.modRevision} -> ${a.modRevision}, version ${b.version} -> ${a.version}${a.value === b.value ? '' : ', value differs'}`);
  }
  for (const key of after.keys()) if (!before.has(key)) add(`${key} appeared`);
  for (const [key, a] of after) if (a.version !== String(version)) add(`${key} has version ${a.version}, want ${version}`);
  return out;
}

/**
 * The compaction row (field lessons: "compaction that cannot keep up", k3s #10619, kine #213): how fast
 * a server removes stale history while clients write, and what removing it costs the writers. Per server
 * (etcd 3.4 as the reference; the middleware on SQLite, PostgreSQL and MariaDB), each on a fresh instance:
 *   - history: N keys of 1 KiB (5000 by default) each written R times (10): N x (R-1) stale rows, the churn
 *     of kube objects updated in place;
 *   - the put-16 row (new keys, elsewhere) idle before the compaction and again after it (their mean: the
 *     idle rate; the shared machine's load drifts);
 *   - Compact(head revision, physical: the RPC returns once the rows are removed) sent when the same put row
 *     starts measuring, the row ended when Compact returns: rows removed per second by the server's own
 *     count and clock (etcd: its compaction metrics; the middleware: harikube_compacted_rows_total and its
 *     `compacted` log line), the RPC's wall time, puts/s meanwhile as a ratio of idle, and rows removed/s
 *     against rows the puts wrote/s meanwhile and idle (above 1: compaction outruns that churn);
 *   - checks: a Range at an old revision answers "compacted"; the server counts exactly N x (R-1) rows
 *     removed; the SQL table holds one row per key under the history prefix (R before); every key still has
 *     its newest value, mod revision and version R, as read before the compaction.
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { prefixEnd } from '../test/support/bytes.js';
import { EtcdClient } from '../test/support/grpc.js';
import { createScratchStore, type StoreKind } from '../test/support/scratch-store.js';
import { onCleanup } from './cleanup.js';
import { compactPhysical } from './compact-rpc.js';
import {
  compactedLogLine,
  compactionRates,
  etcdCompactionCounters,
  middlewareCompactionCounters,
  newestVersionProblems,
  type CompactedLogLine,
  type CompactionCounters,
  type NewestVersion,
} from './compaction-stats.js';
import { runLoadgen, type LoadgenHooks } from './loadgen.js';
import { rowPrefix } from './measure.js';
import type { PutPhase } from './migration.js';
import { cpuSeconds } from './procfs.js';
import { rowNamed } from './rows.js';
import { storedRowCount } from '../test/support/stored-keys.js';
import { launchMiddleware, startEtcd, type MiddlewareLaunch, type TargetName } from './servers.js';

/** Servers the row runs on: single servers that keep history (kine's loader cannot overwrite keys). */
export const COMPACTION_TARGETS = ['etcd', 'etcd-3.6', 'mw-sqlite', 'mw-postgres', 'mw-mysql'] as const satisfies readonly TargetName[];
export type CompactionTarget = (typeof COMPACTION_TARGETS)[number];
export const DEFAULT_COMPACTION_TARGETS: readonly CompactionTarget[] = ['etcd', 'mw-sqlite', 'mw-postgres', 'mw-mysql'];

/** The overwritten keys: /registry/configmaps/churn/<8 digits>, as tools/loadgen's load row lays them out. */
const HISTORY_PREFIX = '/registry/configmaps/churn/';
/** The put row measured idle and while compacting. */
const PUT_ROW = 'put-16';
/** Bound on writing the whole history, and on the Compact RPC (a busy machine takes minutes). */
const HISTORY_TIMEOUT_MS = 10 * 60_000;
const COMPACT_TIMEOUT_MS = 5 * 60_000;
/** Keys per page when reading the history back. */
const PAGE = 1000;

export interface CompactionRun {
  target: CompactionTarget;
  /** Writing the history: seconds, and rows (key revisions) per second. */
  historySeconds: number;
  historyRowsPerSec: number;
  /** A revision of the first write of every key (read before, "compacted" after), and the head compacted to. */
  oldRevision: number;
  compactRevision: number;
  /** SQL backends: rows under the history prefix in the `kv` table before and after. */
  storedRowsBefore?: number;
  storedRowsAfter?: number;
  idle: PutPhase;
  idleAfter: PutPhase;
  /** The put row from Compact's start to its return. */
  during: PutPhase;
  /** The put row ran until Compact returned (not cut short by its own bound) and did some puts. */
  overlapped: boolean;
  /** Rows removed, by the server's own count. */
  rowsRemoved: number;
  /** Compaction time by the server's own clock (`clock` says which), else the RPC's wall time. */
  serverSeconds: number;
  clock: string;
  /** Compact(physical) round trip. */
  wallSeconds: number;
  /** Server CPU over the RPC, and per wall second. */
  serverCpuSeconds: number;
  serverCores: number;
  rowsPerSec: number;
  /** during / mean(idle, idleAfter) puts/s. */
  putRatio: number;
  /** rowsPerSec / puts per second while compacting (each put writes one row): > 1 outruns the churn. */
  churnMultiple: number;
  /** rowsPerSec / the idle puts per second: would it outrun churn at the server's full idle write rate. */
  idleChurnMultiple: number;
  /** The whole row on this server: start, history, put rows, compaction, checks, stop. */
  phaseSeconds: number;
  /** Checks that failed; empty when compaction removed exactly the stale rows and kept every newest value. */
  problems: string[];
  /** The row could not run to its end. */
  error?: string;
}

export interface CompactionResult {
  keys: number;
  revisions: number;
  valueBytes: number;
  /** keys x (revisions - 1). */
  staleRows: number;
  putRow: string;
  runs: CompactionRun[];
}

export interface CompactionOptions {
  keys: number;
  revisions: number;
  targets: readonly CompactionTarget[];
  valueBytes?: number;
  launch?: MiddlewareLaunch;
  log?: (line: string) => void;
}

/** One server under the row, with what it says about its compactions. */
interface Subject {
  address: string;
  pid: number;
  counters(): Promise<CompactionCounters>;
  /** The middleware's log record of the compaction to `revision`. */
  logged?(revision: number): CompactedLogLine | undefined;
  /** SQL backends: rows in `kv` under a prefix. */
  storedRows?(prefix: string): Promise<number>;
  logTail?(): string;
  stop(): Promise<void>;
}

async function metricsText(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`);
  return res.text();
}

async function startSubject(target: CompactionTarget, launch: MiddlewareLaunch | undefined): Promise<Subject> {
  if (target === 'etcd' || target === 'etcd-3.6') {
    const etcd = await startEtcd(target);
    // etcd serves /metrics on its client URL
    const url = `http://${etcd.address}/metrics`;
    return { address: etcd.address, pid: etcd.pid, counters: async () => etcdCompactionCounters(await metricsText(url)), stop: () => etcd.stop() };
  }
  const kind = target.slice('mw-'.length) as StoreKind;
  const store = await createScratchStore(kind);
  const dispose = onCleanup(`dispose the compaction row's ${kind} store`, () => store.dispose());
  try {
    const mw = await launchMiddleware(kind, store.endpoint, launch);
    return {
      address: mw.address,
      pid: mw.pid,
      counters: async () => middlewareCompactionCounters(await metricsText(mw.metricsUrl)),
      logged: (revision) => compactedLogLine(mw.logTail(), revision),
      storedRows: (prefix) => storedRowCount(store.endpoint, prefix),
      logTail: mw.logTail,
      stop: async () => {
        await mw.stop();
        await dispose();
      },
    };
  } catch (err) {
    await dispose();
    throw err;
  }
}

export async function measureCompaction(opts: CompactionOptions): Promise<CompactionResult> {
  const valueBytes = opts.valueBytes ?? 1024;
  const result: CompactionResult = {
    keys: opts.keys,
    revisions: opts.revisions,
    valueBytes,
    staleRows: opts.keys * (opts.revisions - 1),
    putRow: PUT_ROW,
    runs: [],
  };
  for (const target of opts.targets) result.runs.push(await compactOnce(target, opts, valueBytes));
  return result;
}

function emptyRun(target: CompactionTarget): CompactionRun {
  const none = undefined as unknown as PutPhase;
  return {
    target,
    historySeconds: NaN,
    historyRowsPerSec: NaN,
    oldRevision: NaN,
    compactRevision: NaN,
    idle: none,
    idleAfter: none,
    during: none,
    overlapped: false,
    rowsRemoved: NaN,
    serverSeconds: NaN,
    clock: '',
    wallSeconds: NaN,
    serverCpuSeconds: NaN,
    serverCores: NaN,
    rowsPerSec: NaN,
    putRatio: NaN,
    churnMultiple: NaN,
    idleChurnMultiple: NaN,
    phaseSeconds: NaN,
    problems: [],
  };
}

async function headRevision(client: EtcdClient): Promise<number> {
  return Number((await client.range({ key: Buffer.from(HISTORY_PREFIX), count_only: true })).header.revision);
}

async function compactOnce(target: CompactionTarget, opts: CompactionOptions, valueBytes: number): Promise<CompactionRun> {
  const log = opts.log ?? (() => undefined);
  const { keys, revisions } = opts;
  const run = emptyRun(target);
  const label = `compaction on ${target}`;
  const phaseStarted = performance.now();
  const subject = await startSubject(target, opts.launch).catch((err: Error) => {
    run.error = `starting ${target}: ${err.message}`;
    return undefined;
  });
  if (!subject) {
    log(`  ${label}: FAILED: ${run.error}`);
    run.phaseSeconds = (performance.now() - phaseStarted) / 1000;
    return run;
  }
  const client = new EtcdClient(subject.address);
  try {
    // the history: every key written `revisions` times, one load row per round
    const started = performance.now();
    const deadline = Date.now() + HISTORY_TIMEOUT_MS;
    for (let round = 1; round <= revisions; round++) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`writing the history took over ${HISTORY_TIMEOUT_MS / 60_000} min (${round - 1} of ${revisions} rounds)`);
      const load = await runLoadgen(
        ['--row', 'load', '--endpoint', subject.address, '--prefix', HISTORY_PREFIX, '--keys', String(keys), '--value-size', String(valueBytes), '--clients', '8', '--setup-timeout', `${Math.ceil(left / 1000)}s`],
        left + 60_000,
      );
      if (load.errors) throw new Error(`writing round ${round} of the history: ${load.firstError}`);
      if (round === 1) run.oldRevision = await headRevision(client);
    }
    run.historySeconds = (performance.now() - started) / 1000;
    run.historyRowsPerSec = (keys * revisions) / run.historySeconds;
    log(`  ${label}: ${keys} keys x ${revisions} revisions of ${valueBytes} B written in ${run.historySeconds.toFixed(1)} s (${Math.round(run.historyRowsPerSec)} rows/s)`);

    const before = await newestVersions(client, keys);
    if (before.size !== keys) run.problems.push(`${before.size} history keys before compacting, ${keys} were written`);
    // the old revision is readable now, so "compacted" afterwards is the compaction's doing
    await client.range({ key: Buffer.from(HISTORY_PREFIX), range_end: prefixEnd(HISTORY_PREFIX), count_only: true, revision: run.oldRevision });
    if (subject.storedRows) {
      run.storedRowsBefore = await subject.storedRows(HISTORY_PREFIX);
      if (run.storedRowsBefore !== keys * revisions) run.problems.push(`${run.storedRowsBefore} rows under the history prefix before compacting, want ${keys * revisions}`);
    }

    run.idle = await putPhase(subject, 'idle');
    log(`  ${label}: ${PUT_ROW} idle ${Math.round(run.idle.opsPerSec)} puts/s`);

    await compactUnderLoad(subject, client, run);
    log(
      `  ${label}: ${run.rowsRemoved} rows removed in ${run.serverSeconds.toFixed(2)} s (${run.clock}): ${Math.round(run.rowsRemoved / run.serverSeconds)} rows/s; ` +
        `Compact ${run.wallSeconds.toFixed(2)} s wall, server ${run.serverCores.toFixed(2)} cores; ${PUT_ROW} meanwhile ${Math.round(run.during.opsPerSec)} puts/s` +
        (run.overlapped ? '' : ' (NOT during the whole compaction)'),
    );

    run.idleAfter = await putPhase(subject, 'idle-after');
    const rates = compactionRates(run.rowsRemoved, run.serverSeconds, run.during.opsPerSec, [run.idle.opsPerSec, run.idleAfter.opsPerSec]);
    Object.assign(run, rates);
    log(
      `  ${label}: ${PUT_ROW} idle again ${Math.round(run.idleAfter.opsPerSec)} puts/s; while compacting = ${run.putRatio.toFixed(2)}x idle; ` +
        `removed ${run.churnMultiple.toFixed(1)}x the rows the puts wrote per second meanwhile, ${run.idleChurnMultiple.toFixed(1)}x their idle rate`,
    );

    await checkAfter(subject, client, run, before, keys, revisions);
    log(`  ${label}: ${run.problems.length ? `CHECKS FAILED: ${run.problems.join('; ')}` : 'checks passed (old revision compacted, stale rows gone, newest values intact)'}`);
  } catch (err) {
    run.error = (err as Error).message;
    log(`  ${label}: FAILED: ${run.error}\n${subject.logTail?.().slice(-2000) ?? ''}`);
  } finally {
    client.close();
    await subject.stop();
    run.phaseSeconds = (performance.now() - phaseStarted) / 1000;
  }
  log(`  ${label}: ${run.phaseSeconds.toFixed(0)} s in all`);
  return run;
}

/** What the compaction RPC left behind, for compactUnderLoad. */
interface CompactOutcome {
  /** Date.now() when Compact returned (or failed). */
  endedAt: number;
  error?: Error;
  before?: CompactionCounters;
  cpuSeconds: number;
}

/**
 * Compact(head, physical) sent as the put row starts measuring; the row is ended as soon as Compact returns,
 * so its numbers cover the compaction and nothing else. Fills the compaction fields of `run`.
 */
async function compactUnderLoad(subject: Subject, client: EtcdClient, run: CompactionRun): Promise<void> {
  let endMeasurement: (() => void) | undefined;
  let compaction: Promise<CompactOutcome> | undefined;
  let loadEndedAt = NaN;
  // never rejects: its outcome is read after the put row, whatever became of the row
  const compact = async (): Promise<CompactOutcome> => {
    let before: CompactionCounters | undefined;
    let cpu0 = NaN;
    let t0 = NaN;
    let error: Error | undefined;
    try {
      run.compactRevision = await headRevision(client);
      before = await subject.counters();
      cpu0 = cpuSeconds(subject.pid);
      t0 = performance.now();
      await compactPhysical(subject.address, run.compactRevision, COMPACT_TIMEOUT_MS);
    } catch (err) {
      error = err as Error;
    }
    run.wallSeconds = (performance.now() - t0) / 1000;
    const outcome = { endedAt: Date.now(), error, before, cpuSeconds: cpuSeconds(subject.pid) - cpu0 };
    endMeasurement?.();
    return outcome;
  };
  let loadError: Error | undefined;
  try {
    run.during = await putPhase(subject, 'compacting', {
      boundMs: COMPACT_TIMEOUT_MS + 30_000,
      onSpawn: (end) => (endMeasurement = end),
      onStart: () => void (compaction = compact()),
      onEnd: () => void (loadEndedAt = Date.now()),
    });
  } catch (err) {
    loadError = err as Error;
  }
  const c = await compaction;
  if (c?.error) throw new Error(`Compact(${run.compactRevision}, physical): ${c.error.message}`);
  if (loadError) throw loadError;
  if (!c?.before) throw new Error(`${PUT_ROW} ended without starting its measured phase: nothing was compacted`);
  run.overlapped = c.endedAt <= loadEndedAt && run.during.ops > 0;
  run.serverCpuSeconds = c.cpuSeconds;
  run.serverCores = c.cpuSeconds / run.wallSeconds;
  const after = await subject.counters();
  run.rowsRemoved = after.rows - c.before.rows;
  if (subject.logged) {
    const line = subject.logged(run.compactRevision);
    if (line && Number.isFinite(line.ms)) {
      run.serverSeconds = line.ms / 1000;
      run.clock = "its 'compacted' log line";
      if (line.deletedRows !== run.rowsRemoved) run.problems.push(`the log says ${line.deletedRows} rows removed, harikube_compacted_rows_total ${run.rowsRemoved}`);
      if (line.paused) run.problems.push('the compaction paused before removing every stale row (too slow)');
    }
  } else if (after.runs - c.before.runs === 1) {
    run.serverSeconds = (after.ms - c.before.ms) / 1000;
    run.clock = "etcd's compaction duration metric";
  }
  if (!run.clock) {
    run.serverSeconds = run.wallSeconds;
    run.clock = 'the RPC round trip (the server did not say)';
    run.problems.push('the server reported no duration of its own for this compaction');
  }
}

/** The put row on keys of its own; `bound` replaces its time and op bounds (ended early through onSpawn). */
async function putPhase(subject: Subject, name: string, hooks: LoadgenHooks & { boundMs?: number } = {}): Promise<PutPhase> {
  const row = rowNamed(PUT_ROW);
  const bound = hooks.boundMs ? ['--duration', `${Math.ceil(hooks.boundMs / 1000)}s`, '--max-ops', '100000000'] : [];
  let cpu0 = NaN;
  let cpu1 = NaN;
  const r = await runLoadgen([...row.args, '--endpoint', subject.address, '--prefix', rowPrefix(`compaction-${name}`), ...bound], row.timeoutMs + (hooks.boundMs ?? 0), {
    onSpawn: hooks.onSpawn,
    onStart: () => {
      cpu0 = cpuSeconds(subject.pid);
      hooks.onStart?.();
    },
    onEnd: () => {
      cpu1 = cpuSeconds(subject.pid);
      hooks.onEnd?.();
    },
  });
  if (r.errors) throw new Error(`${PUT_ROW} (${name}): ${r.errors} errors, first: ${r.firstError}`);
  return { ...r, serverCpuSeconds: cpu1 - cpu0 };
}

/** Every history key at the head, paged at one pinned revision (bounded: at most keys / PAGE + 2 pages). */
async function newestVersions(client: EtcdClient, keys: number): Promise<Map<string, NewestVersion>> {
  const out = new Map<string, NewestVersion>();
  const end = prefixEnd(HISTORY_PREFIX);
  let from = Buffer.from(HISTORY_PREFIX);
  let revision = 0;
  for (let page = 0; page < Math.ceil(keys / PAGE) + 2; page++) {
    const res = await client.range({ key: from, range_end: end, limit: PAGE, revision });
    revision ||= Number(res.header.revision);
    for (const kv of res.kvs) {
      out.set(kv.key.toString('utf8'), { modRevision: kv.mod_revision, version: kv.version, value: createHash('sha256').update(kv.value).digest('hex') });
    }
    if (!res.more || !res.kvs.length) return out;
    from = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
  }
  throw new Error(`reading ${keys} history keys took more than ${Math.ceil(keys / PAGE) + 2} pages`);
}

/** The old revision answers "compacted", the server removed exactly the stale rows, every newest value is intact. */
async function checkAfter(subject: Subject, client: EtcdClient, run: CompactionRun, before: Map<string, NewestVersion>, keys: number, revisions: number): Promise<void> {
  const stale = keys * (revisions - 1);
  const old = await client.range({ key: Buffer.from(HISTORY_PREFIX), range_end: prefixEnd(HISTORY_PREFIX), count_only: true, revision: run.oldRevision }).then(
    () => undefined,
    (err: Error) => err,
  );
  if (!old) run.problems.push(`a Range at revision ${run.oldRevision} still answers after compacting to ${run.compactRevision}`);
  else if (!/compacted/.test(old.message)) run.problems.push(`a Range at revision ${run.oldRevision} failed, but not as compacted: ${old.message}`);
  if (run.rowsRemoved !== stale) run.problems.push(`the server counted ${run.rowsRemoved} rows removed, ${stale} were stale`);
  if (subject.storedRows) {
    run.storedRowsAfter = await subject.storedRows(HISTORY_PREFIX);
    if (run.storedRowsAfter !== keys) run.problems.push(`${run.storedRowsAfter} rows under the history prefix after compacting, want ${keys} (one per key)`);
  }
  run.problems.push(...newestVersionProblems(before, await newestVersions(client, keys), revisions));
}

/**
 * The migration row: keys of 1 KiB (100k by default) in one namespace on the middleware's default backend
 * (SQLite), then a topology change (a rewrite of its topology file) routes the namespace to PostgreSQL and
 * the mover moves them online. Measured, on the same server in the same run:
 *   - keys/s moved: the mover's own count and clock (GET /migrations), and the wall time from the change;
 *   - put throughput of API clients (the put-16 row, on keys that stay in SQLite) while keys move, as a
 *     ratio of the same row run idle just before the change and again right after the move (their mean: the
 *     shared machine's load drifts). The row counts only if the migration was moving from the first to the
 *     last moment of its measured phase (`overlapped`).
 * Once per --migration-rate: the default (2000 keys/s) and unlimited (0). Each run checks that every key
 * is still there afterwards (count through the API) and was moved exactly once (the mover's count).
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MigrationStatus } from '../middleware/src/migration/status.js';
import { EtcdClient } from '../test/support/grpc.js';
import { createScratchStore } from '../test/support/scratch-store.js';
import { onCleanup } from './cleanup.js';
import { runLoadgen, type LoadgenResult } from './loadgen.js';
import { rowPrefix } from './measure.js';
import { cpuSeconds } from './procfs.js';
import { rowNamed } from './rows.js';
import { startMiddleware, type MiddlewareLaunch } from './servers.js';

/** The middleware's default --migration-rate. */
export const DEFAULT_MIGRATION_RATE = 2000;
/** The namespace that moves; its keys are /registry/configmaps/<ns>/<8 digits>. */
const NAMESPACE = 'team-a';
/** The put row measured idle and while keys move. */
const PUT_ROW = 'put-16';
/** Bound on loading the keys and on the move itself (a busy machine takes minutes). */
const PHASE_TIMEOUT_MS = 15 * 60_000;

export interface PutPhase extends LoadgenResult {
  /** Server CPU seconds over the measured phase. */
  serverCpuSeconds: number;
}

export interface MigrationRun {
  /** --migration-rate, keys/s (0: no limit). */
  rate: number;
  loadKeysPerSec: number;
  /** The put row before the change and after the move. */
  idle: PutPhase;
  idleAfter: PutPhase;
  during: PutPhase;
  /** during / mean(idle, idleAfter) put ops/s. */
  ratio: number;
  /** The mover was moving during the whole measured phase of `during`. */
  overlapped: boolean;
  keysMoved: number;
  /** Mover's clock: from the change taking effect to the source emptied. */
  moveSeconds: number;
  keysPerSec: number;
  /** From the topology file write to GET /migrations saying done (includes the change's own scan). */
  wallSeconds: number;
  /** Server CPU seconds from the change to done, and per wall second. */
  serverCpuSeconds: number;
  serverCores: number;
  error?: string;
}

export interface MigrationResult {
  keys: number;
  valueBytes: number;
  from: 'sqlite';
  to: 'postgres';
  putRow: string;
  runs: MigrationRun[];
}

export interface MigrationOptions {
  keys: number;
  rates: number[];
  valueBytes?: number;
  launch?: MiddlewareLaunch;
  log?: (line: string) => void;
}

async function migrations(metricsUrl: string): Promise<MigrationStatus> {
  const res = await fetch(metricsUrl.replace(/\/metrics$/, '/migrations'), { signal: AbortSignal.timeout(5_000) });
  if (!res.ok) throw new Error(`GET /migrations answered ${res.status}`);
  return (await res.json()) as MigrationStatus;
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(100);
  }
}

export async function measureMigration(opts: MigrationOptions): Promise<MigrationResult> {
  const valueBytes = opts.valueBytes ?? 1024;
  const result: MigrationResult = { keys: opts.keys, valueBytes, from: 'sqlite', to: 'postgres', putRow: PUT_ROW, runs: [] };
  for (const rate of opts.rates) result.runs.push(await migrateOnce(rate, opts.keys, valueBytes, opts));
  return result;
}

async function migrateOnce(rate: number, keys: number, valueBytes: number, opts: MigrationOptions): Promise<MigrationRun> {
  const log = opts.log ?? (() => undefined);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hk-bench-migration-'));
  const removeDir = onCleanup(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
  const topology = path.join(dir, 'topology.yaml');
  await writeFile(topology, 'backends: []\n');
  const target = await createScratchStore('postgres');
  const dropTarget = onCleanup('drop the migration target database', () => target.dispose());
  const server = await startMiddleware('sqlite', {
    ...opts.launch,
    extraArgs: [...(opts.launch?.extraArgs ?? []), '--topology-config', `file://${topology}`, '--migration-rate', String(rate)],
  });
  const run: MigrationRun = {
    rate,
    loadKeysPerSec: NaN,
    idle: undefined as unknown as PutPhase,
    idleAfter: undefined as unknown as PutPhase,
    during: undefined as unknown as PutPhase,
    ratio: NaN,
    overlapped: false,
    keysMoved: 0,
    moveSeconds: NaN,
    keysPerSec: NaN,
    wallSeconds: NaN,
    serverCpuSeconds: NaN,
    serverCores: NaN,
  };
  const label = `migration at --migration-rate ${rate || 'unlimited'}`;
  try {
    const prefix = `/registry/configmaps/${NAMESPACE}/`;
    const load = await runLoadgen(
      ['--row', 'load', '--endpoint', server.address, '--prefix', prefix, '--keys', String(keys), '--value-size', String(valueBytes), '--clients', '8', '--setup-timeout', `${PHASE_TIMEOUT_MS / 1000}s`],
      PHASE_TIMEOUT_MS + 60_000,
    );
    if (load.errors) throw new Error(`loading ${keys} keys: ${load.firstError}`);
    run.loadKeysPerSec = keys / load.seconds;
    log(`  ${label}: ${keys} keys x ${valueBytes} B loaded into SQLite (${Math.round(run.loadKeysPerSec)} keys/s)`);

    run.idle = await putPhase(server.address, server.pid, 'idle');
    log(`  ${label}: ${PUT_ROW} idle ${Math.round(run.idle.opsPerSec)} puts/s`);

    const cpu0 = cpuSeconds(server.pid);
    const changed = Date.now();
    await writeFile(`${topology}.tmp`, `backends:\n- name: ${NAMESPACE}\n  endpoint: ${target.endpoint}\n  namespace: { namespace: ${NAMESPACE} }\n`);
    await rename(`${topology}.tmp`, topology);
    await until('the mover to start moving', PHASE_TIMEOUT_MS, async () => {
      const src = (await migrations(server.metricsUrl!)).sources[0];
      return src && (src.keysMoved > 0 || src.phase === 'done') ? true : undefined;
    });
    // the mover's phase at both ends of the measured window (sampled in the loadgen's hooks)
    const ends: Promise<MigrationStatus>[] = [];
    run.during = await putPhase(server.address, server.pid, 'moving', () => ends.push(migrations(server.metricsUrl!)));
    const [atStart, atEnd] = await Promise.all(ends);
    const moving = (s: MigrationStatus | undefined) => !!s && s.active && s.sources.some((x) => x.phase === 'moving' && x.keysMoved < x.keysTotal);
    run.overlapped = moving(atStart) && moving(atEnd);
    log(`  ${label}: ${PUT_ROW} while moving ${Math.round(run.during.opsPerSec)} puts/s${run.overlapped ? '' : ' (NOT during the whole move)'}`);

    const done = await until('the migration to finish', PHASE_TIMEOUT_MS, async () => {
      const s = await migrations(server.metricsUrl!);
      return !s.active && s.sources[0]?.phase === 'done' ? s : undefined;
    });
    run.wallSeconds = (Date.now() - changed) / 1000;
    run.serverCpuSeconds = cpuSeconds(server.pid) - cpu0;
    run.serverCores = run.serverCpuSeconds / run.wallSeconds;
    const src = done.sources[0]!;
    run.keysMoved = src.keysMoved;
    run.moveSeconds = (src.finishedAt! - src.startedAt) / 1000;
    run.keysPerSec = src.keysMoved / run.moveSeconds;
    log(`  ${label}: ${src.keysMoved} keys moved in ${run.moveSeconds.toFixed(1)} s (${Math.round(run.keysPerSec)} keys/s; ${run.wallSeconds.toFixed(1)} s from the change), server ${run.serverCores.toFixed(2)} cores`);
    run.idleAfter = await putPhase(server.address, server.pid, 'idle-after');
    run.ratio = run.during.opsPerSec / ((run.idle.opsPerSec + run.idleAfter.opsPerSec) / 2);
    log(`  ${label}: ${PUT_ROW} idle again ${Math.round(run.idleAfter.opsPerSec)} puts/s; while moving = ${run.ratio.toFixed(2)}x idle`);

    // nothing lost, nothing moved twice
    const client = new EtcdClient(server.address);
    try {
      const end = Buffer.from(prefix.slice(0, -1) + '0');
      const count = Number((await client.range({ key: Buffer.from(prefix), range_end: end, count_only: true })).count);
      if (count !== keys) throw new Error(`${count} keys under ${prefix} after the migration, ${keys} before`);
    } finally {
      client.close();
    }
    if (src.keysMoved !== keys) throw new Error(`the mover counted ${src.keysMoved} keys moved, ${keys} were loaded`);
  } catch (err) {
    run.error = (err as Error).message;
    log(`  ${label}: FAILED: ${run.error}\n${server.logTail?.().slice(-2000) ?? ''}`);
  } finally {
    await server.stop();
    await dropTarget();
    await removeDir();
  }
  return run;
}

/** The put row against the server, its CPU sampled over the measured phase; `onEdge` at its start and end. */
async function putPhase(address: string, pid: number, name: string, onEdge?: () => void): Promise<PutPhase> {
  const row = rowNamed(PUT_ROW);
  let cpu0 = NaN;
  let cpu1 = NaN;
  const r = await runLoadgen([...row.args, '--endpoint', address, '--prefix', rowPrefix(`migration-${name}`)], row.timeoutMs, {
    onStart: () => {
      cpu0 = cpuSeconds(pid);
      onEdge?.();
    },
    onEnd: () => {
      cpu1 = cpuSeconds(pid);
      onEdge?.();
    },
  });
  if (r.errors) throw new Error(`${PUT_ROW} (${name}): ${r.errors} errors, first: ${r.firstError}`);
  return { ...r, serverCpuSeconds: cpu1 - cpu0 };
}

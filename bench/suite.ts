/**
 * The full bench: every server started once, then each row run against each server in turn (etcd first),
 * row by row. Interleaving by row rather than by server spreads background noise on the shared cores over
 * all targets instead of penalising whichever server happens to run during a busy minute. The load comes
 * from the Go load generator (tools/loadgen), one process per (row, server).
 */
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { ETCD_BIN, isAvailable } from '../test/support/env.js';
import { toolDir } from '../test/support/tools.js';
import type { BenchFlags } from './flags.js';
import { judgeFloors, type FloorResult } from './floors.js';
import { loadgenBin } from './loadgen.js';
import { measureRow, processSplit, type Measurement } from './measure.js';
import { measureCompaction, type CompactionResult } from './compaction.js';
import { measureMemory, type MemoryResult } from './memory.js';
import { DEFAULT_MIGRATION_RATE, measureMigration, type MigrationResult } from './migration.js';
import { ROWS, rowNamed, type Row } from './rows.js';
import { unavailable, type BenchServer, type MiddlewareLaunch, type TargetName } from './servers.js';
import { startTarget } from './targets.js';
import { compileMiddleware } from './compile.js';
import { KUBE_ROW_NAMES, kubeRowsUnavailable, runKubeRows, type KubeMeasurement, type KubeResult } from './kube.js';

/** The loadgen rows and the kube rows the flags ask for. */
export function selectRows(flags: BenchFlags): { rows: Row[]; kubeRows: string[] } {
  const named = flags.rows;
  const otherOnly = flags.memoryOnly || flags.migrationOnly || flags.compactionOnly;
  const kubeRows = otherOnly || flags.skipKube ? [] : named ? named.filter((r) => KUBE_ROW_NAMES.includes(r)) : [...KUBE_ROW_NAMES];
  const rows = otherOnly || flags.kubeOnly ? [] : named ? named.filter((r) => !KUBE_ROW_NAMES.includes(r)).map(rowNamed) : [...ROWS];
  if (flags.kubeOnly && named && !kubeRows.length) throw new Error(`--kube-only with --rows that names no kube row (kube rows: ${KUBE_ROW_NAMES.join(', ')})`);
  return { rows, kubeRows };
}

export interface SuiteResult {
  startedAt: string;
  environment: Record<string, unknown>;
  measurements: Measurement[];
  /** Rows through kube-apiserver on etcd and on the middleware (bench/kube.ts); absent when not run. */
  kube?: KubeMeasurement[];
  memory: MemoryResult[];
  /** The migration row (undefined: not run). */
  migration?: MigrationResult;
  /** The compaction row (undefined: not run). */
  compaction?: CompactionResult;
  floors: FloorResult[];
  skipped: string[];
  /** Layered targets: bench keys in each of their backends after the rows, read from the backends. */
  storedKeys?: Partial<Record<TargetName, Record<string, number>>>;
}

function firstLine(bin: string, args: string[]): string {
  try {
    return execFileSync(bin, args, { encoding: 'utf8' }).split('\n')[0] ?? '?';
  } catch {
    return '?';
  }
}

function cpuModel(): string {
  return os.cpus()[0]?.model ?? '?';
}

/** `uptime`'s load averages: the machine is shared, so a reader must see how busy it was. */
function loadAverages(): string {
  return os.loadavg().map((l) => l.toFixed(2)).join(', ');
}

async function runnable<T extends TargetName>(targets: readonly T[], skipped: string[]): Promise<T[]> {
  const out: T[] = [];
  for (const t of targets) {
    const why = await unavailable(t);
    if (why) skipped.push(`${t}: ${why}`);
    else out.push(t);
  }
  return out;
}

export async function runSuite(flags: BenchFlags, log: (s: string) => void): Promise<SuiteResult> {
  const startedAt = new Date().toISOString();
  const loadAtStart = loadAverages();
  const skipped: string[] = [];
  const { rows, kubeRows: wantedKubeRows } = selectRows(flags);
  // Said up front, before anything is compiled or started.
  const kubeSkip = wantedKubeRows.length ? kubeRowsUnavailable() : undefined;
  if (kubeSkip) {
    skipped.push(kubeSkip);
    log(`skipping the rows through kube-apiserver: ${kubeSkip}`);
  }
  const kubeRows = kubeSkip ? [] : wantedKubeRows;
  if (!flags.kubeOnly) loadgenBin(); // fails early, saying how to build it
  const targets = rows.length ? await runnable(flags.targets, skipped) : [];
  if (rows.length && !targets.includes('etcd')) throw new Error(`etcd 3.4 cannot run (${skipped.join('; ')}): ratios need the reference`);
  const memoryTargets = flags.skipMemory || flags.migrationOnly || flags.kubeOnly || flags.compactionOnly ? [] : flags.memoryTargets;
  let migrating = !flags.skipMigration && !flags.memoryOnly && !flags.kubeOnly && !flags.compactionOnly;
  if (migrating && !(await isAvailable('postgres'))) {
    skipped.push('migration: PostgreSQL is not reachable (the row moves keys from SQLite to PostgreSQL)');
    migrating = false;
  }
  const compactionSkipped: string[] = [];
  const compactionTargets =
    flags.skipCompaction || flags.memoryOnly || flags.kubeOnly || flags.migrationOnly ? [] : await runnable(flags.compactionTargets, compactionSkipped);
  skipped.push(...compactionSkipped.map((s) => `compaction on ${s}`));
  const launch: MiddlewareLaunch = {};
  if (flags.compiled && (migrating || kubeRows.length || [...targets, ...memoryTargets, ...compactionTargets].some((t) => t.startsWith('mw-')))) {
    log('compiling the middleware (as production runs it; --tsx to run the sources instead)...');
    launch.compiledCli = await compileMiddleware();
  }

  const servers: BenchServer[] = [];
  const measurements: Measurement[] = [];
  let storedKeys: SuiteResult['storedKeys'];
  try {
    for (const t of rows.length ? targets : []) {
      log(`starting ${t}...`);
      servers.push(await startTarget(t, launch));
    }
    for (const row of rows) {
      for (const server of servers) {
        let m: Measurement;
        try {
          m = await measureRow(row, server);
        } catch (err) {
          skipped.push(`${row.name} on ${server.target}: ${(err as Error).message.split('\n').slice(0, 3).join(' ')}`);
          log(`  ${row.name.padEnd(10)} ${server.target.padEnd(13)} failed: ${(err as Error).message}`);
          continue;
        }
        measurements.push(m);
        log(
          `  ${row.name.padEnd(10)} ${server.target.padEnd(13)} ${Math.round(m.opsPerSec).toString().padStart(7)} ops/s  ` +
            `p50 ${m.p50Ms.toFixed(2)} ms  p99 ${m.p99Ms.toFixed(2)} ms  cpu: server ${m.serverCpuSeconds.toFixed(2)} s${processSplit(m)}, loadgen ${m.cpuSeconds.toFixed(2)} s` +
            (m.errors ? `  ${m.errors} errors (${m.firstError})` : ''),
        );
      }
    }
    // the layered targets' split, as it is on disk: a row whose keys all landed in one backend measured nothing routed
    for (const s of servers) {
      if (!s.storedKeys) continue;
      try {
        const counts = await s.storedKeys();
        (storedKeys ??= {})[s.target] = counts;
        log(`  ${s.target}: bench keys per backend: ${Object.entries(counts).map(([b, n]) => `${b} ${n}`).join(', ')}`);
      } catch (err) {
        skipped.push(`${s.target} keys per backend: ${(err as Error).message}`);
      }
    }
  } finally {
    for (const s of servers) await s.stop();
  }

  // Through kube-apiserver: its own two servers (on etcd, on the middleware), after the loadgen servers stopped.
  let kube: KubeResult | undefined;
  if (kubeRows.length) {
    log(`rows through kube-apiserver: ${kubeRows.join(', ')}`);
    kube = await runKubeRows(launch, log, kubeRows);
    if (kube.skipped) skipped.push(kube.skipped);
  }

  const memory: MemoryResult[] = [];
  if (memoryTargets.length) {
    for (const t of await runnable(memoryTargets, skipped)) {
      log(`memory phase: ${flags.memorySizes.join(', ')} keys x 1 KiB into ${t}...`);
      memory.push(await measureMemory(t, { sizes: flags.memorySizes, log, launch }));
    }
  }

  let migration: MigrationResult | undefined;
  if (migrating) {
    log(`migration: ${flags.migrationKeys} keys x 1 KiB moved online from SQLite to PostgreSQL, at --migration-rate ${DEFAULT_MIGRATION_RATE} (default) and 0 (unlimited)...`);
    migration = await measureMigration({ keys: flags.migrationKeys, rates: [DEFAULT_MIGRATION_RATE, 0], launch, log });
  }

  let compaction: CompactionResult | undefined;
  if (compactionTargets.length) {
    log(`compaction: ${flags.compactionKeys} keys x ${flags.compactionRevisions} revisions of 1 KiB, then Compact(head, physical) under put-16, on ${compactionTargets.join(', ')}...`);
    compaction = await measureCompaction({ keys: flags.compactionKeys, revisions: flags.compactionRevisions, targets: compactionTargets, launch, log });
  }

  const etcd36 = toolDir('etcd');
  const kine = toolDir('kine');
  return {
    startedAt,
    environment: {
      machine: `${os.cpus().length} x ${cpuModel()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.release()}`,
      loadAverageAtStart: loadAtStart,
      loadAverageAtEnd: loadAverages(),
      loadgen: 'tools/loadgen (Go, go.etcd.io/etcd/client/v3 v3.6.17), one process per row and server',
      node: process.version,
      middleware: flags.compiled ? 'compiled (tsc output, plain node)' : 'tsx (middleware/src/cli.ts)',
      etcd: firstLine(ETCD_BIN, ['--version']),
      'etcd-3.6': etcd36 ? firstLine(path.join(etcd36, 'etcd'), ['--version']) : 'not built',
      kine: kine ? firstLine(path.join(kine, 'kine'), ['--version']) : 'not built',
      rows: rows.map((r) => ({ name: r.name, what: r.what, loadgen: r.args.join(' ') })),
      ...(kube?.environment ? { kube: { ...kube.environment, rows: kubeRows } } : {}),
    },
    measurements,
    ...(kube && !kube.skipped ? { kube: kube.measurements } : {}),
    memory,
    ...(migration ? { migration } : {}),
    ...(compaction ? { compaction } : {}),
    ...(storedKeys ? { storedKeys } : {}),
    floors: [...(rows.length || memory.length || migration ? judgeFloors(measurements, memory, migration) : []), ...(kube?.floors ?? [])],
    skipped,
  };
}

/**
 * The full bench: every server started once, then each row run against each server in turn (etcd first),
 * row by row. Interleaving by row rather than by server spreads background noise on the shared cores over
 * all targets instead of penalising whichever server happens to run during a busy minute.
 */
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import { isAvailable } from '../test/support/env.js';
import type { BenchFlags } from './flags.js';
import { judgeFloors, type FloorResult } from './floors.js';
import { measureRow, type Measurement } from './measure.js';
import { measureMemory, type MemoryResult } from './memory.js';
import { ROWS, rowNamed } from './rows.js';
import { startTarget, type BenchServer, type MiddlewareLaunch, type TargetName } from './servers.js';
import { compileMiddleware } from './compile.js';
import { MAX_CONNECTIONS } from './client.js';

export interface SuiteResult {
  startedAt: string;
  environment: Record<string, unknown>;
  measurements: Measurement[];
  memory: MemoryResult | undefined;
  floors: FloorResult[];
  skipped: string[];
}

function etcdVersion(): string {
  try {
    return execFileSync('etcd', ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? '?';
  } catch {
    return '?';
  }
}

export async function runSuite(flags: BenchFlags, log: (s: string) => void): Promise<SuiteResult> {
  const startedAt = new Date().toISOString();
  const skipped: string[] = [];
  if (!(await isAvailable('etcd'))) throw new Error('etcd is not on PATH (apt-get install etcd-server): ratios need the reference');
  let targets: TargetName[] = flags.targets;
  if (targets.includes('mw-postgres') && !(await isAvailable('postgres'))) {
    skipped.push('mw-postgres: PostgreSQL not reachable');
    targets = targets.filter((t) => t !== 'mw-postgres');
  }
  const rows = flags.memoryOnly ? [] : flags.rows ? flags.rows.map(rowNamed) : [...ROWS];
  const launch: MiddlewareLaunch = {};
  if (flags.compiled) {
    log('compiling the middleware (as production runs it; --tsx to run the sources instead)...');
    launch.compiledCli = await compileMiddleware();
  }

  const servers: BenchServer[] = [];
  for (const t of rows.length ? targets : []) {
    log(`starting ${t}...`);
    servers.push(await startTarget(t, launch));
  }
  const measurements: Measurement[] = [];
  try {
    for (const row of rows) {
      for (const server of servers) {
        const m = await measureRow(row, server);
        measurements.push(m);
        log(
          `  ${row.name.padEnd(10)} ${server.target.padEnd(12)} ${Math.round(m.opsPerSec).toString().padStart(7)} ops/s  ` +
            `p50 ${m.p50Ms.toFixed(2)} ms  p99 ${m.p99Ms.toFixed(2)} ms` +
            (m.errors ? `  ${m.errors} errors (${m.firstError})` : ''),
        );
      }
    }
  } finally {
    for (const s of servers) await s.stop();
  }

  let memory: MemoryResult | undefined;
  if (!flags.skipMemory) {
    log('memory phase: 200k keys x 1 KiB into the SQLite middleware...');
    memory = await measureMemory('mw-sqlite', { log, launch });
  }

  return {
    startedAt,
    environment: {
      node: process.version,
      middleware: flags.compiled ? 'compiled (tsc output, plain node)' : 'tsx (middleware/src/cli.ts)',
      etcd: etcdVersion(),
      cpus: os.cpus().length,
      loadavgAtEnd: os.loadavg(),
      connectionsPerPool: `min(clients, ${MAX_CONNECTIONS})`,
      rows: rows.map((r) => ({ name: r.name, what: r.what })),
    },
    measurements,
    memory,
    floors: judgeFloors(measurements, memory),
    skipped,
  };
}

/**
 * The servers under test, as child processes on free loopback ports: the reference etcd and the middleware
 * over a scratch SQLite file or PostgreSQL database. The bench starts its own processes (rather than the
 * test helpers' Etcd/Middleware classes) because it needs their pids (CPU time, RSS) and, for profiling,
 * node flags before `--import tsx`; the pieces that fit (ServerProcess, waitUntil, freePort, scratch
 * stores) are reused from test/support.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ServerProcess } from '../test/support/child.js';
import { ETCD_BIN, freePort } from '../test/support/env.js';
import { REPO_ROOT } from '../test/support/middleware.js';
import { createScratchStore, type StoreKind } from '../test/support/scratch-store.js';
import { waitUntil } from '../test/support/wait.js';
import { onCleanup } from './cleanup.js';

export type TargetName = 'etcd' | 'mw-sqlite' | 'mw-postgres';

export interface BenchServer {
  readonly target: TargetName;
  /** host:port of the etcd API. */
  readonly address: string;
  readonly pid: number;
  /** Prometheus endpoint (middleware only). */
  readonly metricsUrl?: string;
  /** Graceful stop and removal of its storage (idempotent). */
  stop(): Promise<void>;
}

/** Generous: tsx compiles the middleware on first start and the 2 cores are shared. */
const READY_TIMEOUT_MS = 90_000;
const CLI = path.join(REPO_ROOT, 'middleware', 'src', 'cli.ts');

async function waitReady(proc: ServerProcess, what: string, probe: () => Promise<boolean>): Promise<void> {
  try {
    const outcome = await waitUntil(
      what,
      async () => (!proc.running ? 'exited' : (await probe()) ? 'ready' : undefined),
      { timeoutMs: READY_TIMEOUT_MS, intervalMs: 100 },
    );
    if (outcome === 'exited') throw new Error('exited before becoming ready');
  } catch (err) {
    await proc.stop();
    throw proc.failure((err as Error).message);
  }
}

async function httpOk(url: string, check: (body: string) => boolean = () => true): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  const body = await res.text();
  return res.ok && check(body);
}

/** A single-member etcd on a temp data dir, flags as in test/support/etcd.ts (defaults otherwise: fsync on). */
export async function startEtcd(): Promise<BenchServer> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'hk-bench-etcd-'));
  const removeDir = onCleanup(`remove ${dataDir}`, () => rm(dataDir, { recursive: true, force: true }));
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const proc = new ServerProcess(`etcd ${clientUrl}`, ETCD_BIN, [
    '--name', 'bench',
    '--data-dir', dataDir,
    '--listen-client-urls', clientUrl,
    '--advertise-client-urls', clientUrl,
    '--listen-peer-urls', peerUrl,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `bench=${peerUrl}`,
    '--log-level', 'warn',
  ]);
  const stopProc = onCleanup('stop etcd', () => proc.stop());
  await waitReady(proc, `etcd health at ${clientUrl}`, () => httpOk(`${clientUrl}/health`, (b) => b.includes('"true"')));
  return {
    target: 'etcd',
    address: `127.0.0.1:${clientPort}`,
    pid: proc.child.pid!,
    stop: async () => {
      await stopProc();
      await removeDir();
    },
  };
}

export interface MiddlewareLaunch {
  /** Node flags placed before the entry (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** A compiled cli.js to run under plain node (see compile.ts); default: middleware/src/cli.ts under tsx. */
  compiledCli?: string;
  /** Grace before SIGKILL on stop; a CPU profile is only written on a clean exit. */
  stopGraceMs?: number;
}

/** The middleware (`cli.ts serve`) over a fresh scratch store; stop() also drops the store. */
export async function startMiddleware(kind: Extract<StoreKind, 'sqlite' | 'postgres'>, launch: MiddlewareLaunch = {}): Promise<BenchServer> {
  const store = await createScratchStore(kind);
  const dispose = onCleanup(`dispose ${kind} store`, () => store.dispose());
  const [port, metricsPort] = [await freePort(), await freePort()];
  const address = `127.0.0.1:${port}`;
  const proc = new ServerProcess(
    `middleware ${address} (${kind}${launch.compiledCli ? ', compiled' : ''})`,
    process.execPath,
    [
      ...(launch.nodeArgs ?? []),
      ...(launch.compiledCli ? [launch.compiledCli] : ['--import', 'tsx', CLI]),
      'serve',
      '--listen-address', address,
      '--endpoint', store.endpoint,
      '--metrics-bind-address', `127.0.0.1:${metricsPort}`,
      '--log-format', 'json',
      // no automatic compaction: etcd does not compact on its own either
      '--compact-interval', '0',
    ],
    { cwd: REPO_ROOT },
  );
  const stopProc = onCleanup(`stop middleware (${kind})`, () => proc.stop(launch.stopGraceMs));
  await waitReady(proc, `middleware /readyz on ${metricsPort}`, () => httpOk(`http://127.0.0.1:${metricsPort}/readyz`));
  return {
    target: kind === 'sqlite' ? 'mw-sqlite' : 'mw-postgres',
    address,
    pid: proc.child.pid!,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    stop: async () => {
      await stopProc();
      await dispose();
    },
  };
}

export function startTarget(target: TargetName, launch?: MiddlewareLaunch): Promise<BenchServer> {
  if (target === 'etcd') return startEtcd();
  return startMiddleware(target === 'mw-sqlite' ? 'sqlite' : 'postgres', launch);
}

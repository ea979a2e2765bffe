/**
 * The servers under test, as child processes on free loopback ports: Debian's etcd 3.4 (the reference of
 * every ratio), etcd 3.6 and kine built from the Go module proxy (tools/), and the middleware over a scratch
 * SQLite file, PostgreSQL or MariaDB database. The bench starts its own processes (rather than the test
 * helpers' Etcd/Middleware classes) because it needs their pids (CPU time, RSS) and, for profiling, node
 * flags before the entry; the pieces that fit (ServerProcess, waitUntil, freePort, scratch stores, tool
 * lookup) are reused from test/support.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ServerProcess } from '../test/support/child.js';
import { ETCDCTL_BIN, ETCD_BIN, freePort, isAvailable } from '../test/support/env.js';
import { REPO_ROOT } from '../test/support/middleware.js';
import { createScratchStore, type StoreKind } from '../test/support/scratch-store.js';
import { toolDir } from '../test/support/tools.js';
import { waitUntil } from '../test/support/wait.js';
import { onCleanup } from './cleanup.js';

/** In the order the bench drives them, row by row. 'etcd' (Debian's 3.4) is the reference of the ratios. */
export const ALL_TARGETS = ['etcd', 'etcd-3.6', 'kine-sqlite', 'kine-postgres', 'mw-sqlite', 'mw-postgres', 'mw-mysql', 'mw-routed', 'mw-two-layer'] as const;
/** Targets that are several processes (bench/layered.ts): RSS of one of them means nothing, so no memory phase. */
export const LAYERED_TARGETS: readonly TargetName[] = ['mw-routed', 'mw-two-layer'];
export type TargetName = (typeof ALL_TARGETS)[number];

/** kine is built, and etcdctl is there to tell when it is ready. */
async function kineNeeds(): Promise<string | undefined> {
  if (!toolDir('kine')) return 'kine is not built (tools/build.sh kine)';
  return (await isAvailable('etcdctl')) ? undefined : 'etcdctl is not on PATH (apt-get install etcd-client): it probes kine';
}

/** Why `target` cannot run on this machine, or undefined when it can. */
export async function unavailable(target: TargetName): Promise<string | undefined> {
  const needs: Record<TargetName, () => Promise<string | undefined>> = {
    etcd: async () => ((await isAvailable('etcd')) ? undefined : 'etcd is not on PATH (apt-get install etcd-server)'),
    'etcd-3.6': async () => (toolDir('etcd') ? undefined : 'etcd 3.6 is not built (tools/build.sh etcd)'),
    'kine-sqlite': kineNeeds,
    'kine-postgres': async () => (await kineNeeds()) ?? ((await isAvailable('postgres')) ? undefined : 'PostgreSQL is not reachable'),
    'mw-sqlite': async () => undefined,
    'mw-postgres': async () => ((await isAvailable('postgres')) ? undefined : 'PostgreSQL is not reachable'),
    'mw-mysql': async () => ((await isAvailable('mysql')) ? undefined : 'MariaDB/MySQL is not reachable'),
    'mw-routed': async () =>
      !(await isAvailable('postgres')) ? 'PostgreSQL is not reachable' : !(await isAvailable('etcd')) ? 'etcd is not on PATH (apt-get install etcd-server)' : undefined,
    'mw-two-layer': async () => undefined,
  };
  return needs[target]();
}

export interface BenchServer {
  readonly target: TargetName;
  /** host:port of the etcd API. */
  readonly address: string;
  readonly pid: number;
  /** Prometheus endpoint (middleware only). */
  readonly metricsUrl?: string;
  /** The last few KiB of its output, for error messages (middleware only). */
  logTail?(): string;
  /** Other processes of a layered target (child middleware, etcd backend): their CPU counts as the server's. */
  readonly helpers?: readonly { pid: number; label: string }[];
  /** loadgen flags placing a row's keys (--prefix ...); default a prefix of the row's own (measure.ts). */
  keyArgs?(row: string): string[];
  /** Layered targets: bench keys stored in each backend, read from the backends themselves. */
  storedKeys?(): Promise<Record<string, number>>;
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

/** A Range through etcdctl: ready means serving the KV API (kine has no /health of its own). */
function kvAnswers(address: string): Promise<boolean> {
  return new Promise((resolve) =>
    execFile(ETCDCTL_BIN, ['--endpoints', address, '--command-timeout=2s', 'get', '/bench-ready-probe'], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 5_000 }, (err) =>
      resolve(!err),
    ),
  );
}

/** A single-member etcd on a temp data dir, flags as in test/support/etcd.ts (defaults otherwise: fsync on). */
export async function startEtcd(target: Extract<TargetName, 'etcd' | 'etcd-3.6'> = 'etcd'): Promise<BenchServer> {
  const bin = target === 'etcd' ? ETCD_BIN : path.join(toolDir('etcd')!, 'etcd');
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'hk-bench-etcd-'));
  const removeDir = onCleanup(`remove ${dataDir}`, () => rm(dataDir, { recursive: true, force: true }));
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const proc = new ServerProcess(`${target} ${clientUrl}`, bin, [
    '--name', 'bench',
    '--data-dir', dataDir,
    '--listen-client-urls', clientUrl,
    '--advertise-client-urls', clientUrl,
    '--listen-peer-urls', peerUrl,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `bench=${peerUrl}`,
    '--log-level', 'warn',
  ]);
  const stopProc = onCleanup(`stop ${target}`, () => proc.stop());
  await waitReady(proc, `${target} health at ${clientUrl}`, () => httpOk(`${clientUrl}/health`, (b) => b.includes('"true"')));
  return {
    target,
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
  /** More `serve` flags (the migration phase: a topology file and --migration-rate). */
  extraArgs?: string[];
}

/**
 * kine over a scratch SQLite file (kine's default DSN parameters, as k3s users run it: note
 * _synchronous=NORMAL, i.e. no fsync per commit in WAL mode, where the middleware and etcd sync every
 * commit) or a scratch PostgreSQL database (kine creates it; stop() drops it).
 */
export async function startKine(kind: Extract<StoreKind, 'sqlite' | 'postgres'>): Promise<BenchServer> {
  const store = await createScratchStore(kind);
  const dispose = onCleanup(`dispose kine ${kind} store`, () => store.dispose());
  const endpoint =
    kind === 'sqlite'
      ? `${store.endpoint}?_journal_mode=WAL&_busy_timeout=30000&_synchronous=NORMAL&_txlock=immediate&_stmt_cache_size=20&cache=shared`
      : `${store.endpoint}?sslmode=disable`;
  const [port, metricsPort] = [await freePort(), await freePort()];
  const address = `127.0.0.1:${port}`;
  const proc = new ServerProcess(`kine ${address} (${kind})`, path.join(toolDir('kine')!, 'kine'), [
    '--listen-address', address,
    '--endpoint', endpoint,
    '--metrics-bind-address', `127.0.0.1:${metricsPort}`,
  ]);
  const stopProc = onCleanup(`stop kine (${kind})`, () => proc.stop());
  await waitReady(proc, `kine KV API on ${address}`, () => kvAnswers(address));
  return {
    target: kind === 'sqlite' ? 'kine-sqlite' : 'kine-postgres',
    address,
    pid: proc.child.pid!,
    stop: async () => {
      await stopProc();
      await dispose();
    },
  };
}

/** A middleware process (`cli.ts serve`) on `endpoint`, ready; stop() stops it (its storage is the caller's). */
export async function launchMiddleware(label: string, endpoint: string, launch: MiddlewareLaunch = {}): Promise<{ address: string; pid: number; metricsUrl: string; logTail: () => string; stop: () => Promise<void> }> {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const address = `127.0.0.1:${port}`;
  const proc = new ServerProcess(
    `middleware ${address} (${label}${launch.compiledCli ? ', compiled' : ''})`,
    process.execPath,
    [
      ...(launch.nodeArgs ?? []),
      ...(launch.compiledCli ? [launch.compiledCli] : ['--import', 'tsx', CLI]),
      'serve',
      '--listen-address', address,
      '--endpoint', endpoint,
      '--metrics-bind-address', `127.0.0.1:${metricsPort}`,
      '--log-format', 'json',
      // no automatic compaction: etcd does not compact on its own either
      '--compact-interval', '0',
      ...(launch.extraArgs ?? []),
    ],
    { cwd: REPO_ROOT },
  );
  const stop = onCleanup(`stop middleware (${label})`, () => proc.stop(launch.stopGraceMs));
  await waitReady(proc, `middleware /readyz on ${metricsPort}`, () => httpOk(`http://127.0.0.1:${metricsPort}/readyz`));
  return { address, pid: proc.child.pid!, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, logTail: () => proc.tail(), stop };
}

/** The middleware (`cli.ts serve`) over a fresh scratch store; stop() also drops the store. */
export async function startMiddleware(kind: StoreKind, launch: MiddlewareLaunch = {}): Promise<BenchServer> {
  const store = await createScratchStore(kind);
  const dispose = onCleanup(`dispose ${kind} store`, () => store.dispose());
  const mw = await launchMiddleware(kind, store.endpoint, launch);
  return {
    target: `mw-${kind}`,
    address: mw.address,
    pid: mw.pid,
    metricsUrl: mw.metricsUrl,
    logTail: mw.logTail,
    stop: async () => {
      await mw.stop();
      await dispose();
    },
  };
}

/**
 * The servers the contract suite runs against: the reference (a real etcd), the middleware on each SQL
 * backend, and the middleware routing keys across all three at once. HARIKUBE_TEST_TARGETS (comma list)
 * picks a subset; default all five.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { Etcd } from './etcd.js';
import { skipUnless } from './env.js';
import { Middleware } from './middleware.js';
import { createScratchStore, type StoreKind } from './scratch-store.js';

export const ALL_TARGETS = ['etcd', 'middleware-sqlite', 'middleware-postgres', 'middleware-mariadb', 'middleware-routed'] as const;
export type TargetName = (typeof ALL_TARGETS)[number];

/** The reference etcd the suite compares against is Debian's 3.4.23. */
export const REFERENCE_VERSION = '3.4.23';

const STORE_OF: Record<Exclude<TargetName, 'etcd' | 'middleware-routed'>, StoreKind> = {
  'middleware-sqlite': 'sqlite',
  'middleware-postgres': 'postgres',
  'middleware-mariadb': 'mysql',
};

export function selectedTargets(): TargetName[] {
  const raw = process.env.HARIKUBE_TEST_TARGETS?.trim();
  if (!raw) return [...ALL_TARGETS];
  const names = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!(ALL_TARGETS as readonly string[]).includes(n)) {
      throw new Error(`HARIKUBE_TEST_TARGETS: unknown target "${n}" (known: ${ALL_TARGETS.join(', ')})`);
    }
  }
  return names as TargetName[];
}

/** false when the target can run here; a skip message otherwise (throws under HARIKUBE_TEST_REQUIRE_ALL=1). */
export function targetSkip(name: TargetName): Promise<string | false> {
  switch (name) {
    case 'etcd':
      return skipUnless('etcd');
    case 'middleware-postgres':
      return skipUnless('postgres');
    case 'middleware-mariadb':
      return skipUnless('mysql');
    case 'middleware-routed':
      return skipUnless('postgres', 'mysql', 'etcd');
    case 'middleware-sqlite':
      return Promise.resolve(false);
  }
}

export interface ServerOptions {
  /** Periodic progress notifications for watches that ask for them (default '1s'). */
  progressNotifyInterval?: string;
}

export interface RunningServer {
  readonly target: TargetName;
  /** host:port of the etcd API, no scheme. */
  readonly address: string;
  /** Crash the server (SIGKILL, nothing flushed). */
  kill9(): Promise<void>;
  /** Start it again on the same data and address. */
  restart(): Promise<void>;
  /** Stop for good and remove its storage. */
  stop(): Promise<void>;
  /**
   * The routed target only: the endpoint of each backend by rule name (and `default`), so a test can look
   * into the databases themselves.
   */
  readonly backends?: Readonly<Record<RoutedBackend, string>>;
}

/** Starts a fresh server of `target` with its own empty storage; stop() also removes that storage. */
export async function startTarget(target: TargetName, options: ServerOptions = {}): Promise<RunningServer> {
  const progressNotifyInterval = options.progressNotifyInterval ?? '1s';
  if (target === 'etcd') {
    const etcd = await Etcd.start({ progressNotifyInterval });
    return {
      target,
      address: etcd.address,
      kill9: () => etcd.kill9(),
      restart: () => etcd.restart(),
      stop: () => etcd.destroy(),
    };
  }
  if (target === 'middleware-routed') return startRouted(progressNotifyInterval);
  const store = await createScratchStore(STORE_OF[target]);
  let middleware: Middleware;
  try {
    // --compact-interval 0: only the tests' explicit Compact RPCs compact, as with the reference etcd.
    middleware = await Middleware.start({ endpoint: store.endpoint, progressNotifyInterval, compactInterval: '0' });
  } catch (err) {
    await store.dispose().catch(() => undefined);
    throw err;
  }
  return {
    target,
    address: middleware.address,
    kill9: () => middleware.kill9(),
    restart: () => middleware.restart(),
    stop: async () => {
      await middleware.stop();
      await store.dispose();
    },
  };
}

/**
 * The resource prefix the routed target's namespace rule splits: `/registry/configmaps/ns-a/` goes to a
 * PostgreSQL database of its own; the rest of `/registry/configmaps/` is routed by the key rules below, and
 * keys ending in a character none of them matches (an upper-case letter) stay on the default SQLite. The
 * cases that exercise the split (paged-list, watch) use these names on every target.
 */
export const SPLIT_RESOURCE = 'configmaps';
export const SPLIT_NAMESPACE = 'ns-a';

/**
 * The routed target, first match wins: configmaps of namespace ns-a go to a PostgreSQL database of their own
 * (the namespace rule), then keys whose last character is g-m go to a real etcd, u-z to a child middleware
 * (over its own SQLite), an even digit or a-f to PostgreSQL, an odd digit or n-t to MariaDB, everything
 * else stays on the default SQLite backend. Contract keys differ in their last characters, so almost every
 * range, transaction and watch in the suite spans five databases and must still answer exactly as one
 * etcd does; ranges and watches over /registry/configmaps/ span the namespace split as well.
 */
export const ROUTED_RULES = [
  { name: 'ns-a', namespace: { namespace: SPLIT_NAMESPACE, kinds: [SPLIT_RESOURCE] } },
  { name: 'etcd', regexp: { key: '[g-m]$' } },
  { name: 'child', regexp: { key: '[u-z]$' } },
  { name: 'even', regexp: { key: '[02468a-f]$' } },
  { name: 'odd', regexp: { key: '[13579n-t]$' } },
] as const;

/** Names of the routed target's backends: its rules' and the middleware's own `default`. */
export type RoutedBackend = (typeof ROUTED_RULES)[number]['name'] | 'default';

async function startRouted(progressNotifyInterval: string): Promise<RunningServer> {
  // the databases, the etcd and the child start together (a routed start is paid by every file of the suite)
  const made = await Promise.allSettled((['sqlite', 'postgres', 'mysql', 'sqlite', 'postgres'] as const).map((kind) => createScratchStore(kind)));
  const stores = made.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hk-routed-'));
  let etcd: Etcd | undefined;
  let child: Middleware | undefined;
  const dispose = async () => {
    await child?.stop().catch(() => undefined);
    await Promise.all(stores.map((s) => s.dispose().catch(() => undefined)));
    await etcd?.destroy().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  const failed = made.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await dispose();
    throw failed.reason;
  }
  const started = await Promise.allSettled([Etcd.start(), Middleware.start({ endpoint: stores[3]!.endpoint, compactInterval: '0' })]);
  if (started[0].status === 'fulfilled') etcd = started[0].value;
  if (started[1].status === 'fulfilled') child = started[1].value;
  const notStarted = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (!etcd || !child) {
    await dispose();
    throw notStarted!.reason;
  }
  const topology = path.join(dir, 'topology.yaml');
  const endpoints: Record<RoutedBackend, string> = {
    'ns-a': stores[4]!.endpoint,
    etcd: etcd.clientUrl,
    child: `http://${child.address}`,
    even: stores[1]!.endpoint,
    odd: stores[2]!.endpoint,
    default: stores[0]!.endpoint,
  };
  const backends = ROUTED_RULES.map((r) => ({ ...r, endpoint: endpoints[r.name] }));
  await writeFile(topology, stringify({ backends }));
  let middleware: Middleware;
  try {
    middleware = await Middleware.start({
      endpoint: stores[0]!.endpoint,
      progressNotifyInterval,
      compactInterval: '0',
      extraArgs: ['--topology-config', `file://${topology}`],
    });
  } catch (err) {
    await dispose();
    throw err;
  }
  return {
    target: 'middleware-routed',
    address: middleware.address,
    backends: endpoints,
    kill9: () => middleware.kill9(),
    restart: () => middleware.restart(),
    stop: async () => {
      await middleware.stop();
      await dispose();
    },
  };
}

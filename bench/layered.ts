/**
 * The bench's layered targets, built only from the public `harikube serve` interface (a topology file and
 * http:// rule endpoints), as a user would run them:
 *
 * - `mw-routed`: one middleware whose namespace rules spread every row's keys over four backends. loadgen
 *   puts key i of a row under `/registry/bench-<row>/ns-<i mod 4>/` (--namespaces 4); ns-0 stays on the
 *   middleware's default SQLite, ns-1 goes to PostgreSQL, ns-2 to a real etcd, ns-3 to a child middleware
 *   over its own SQLite. A list of a row's keys spans all four; a put, get or txn touches one.
 * - `mw-two-layer`: parent -> child -> SQLite. The parent's one rule sends every bench key to the child;
 *   the parent's own SQLite keeps only its meta store.
 *
 * The CPU of the whole topology (parent, child middleware, etcd) counts as the server's; PostgreSQL's does
 * not, as for mw-postgres.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { prefixEnd } from '../test/support/bytes.js';
import { EtcdClient } from '../test/support/grpc.js';
import { createScratchStore } from '../test/support/scratch-store.js';
import { storedKeys } from '../test/support/stored-keys.js';
import { onCleanup } from './cleanup.js';
import { OPT_IN_ROWS, ROWS } from './rows.js';
import { launchMiddleware, startEtcd, type BenchServer, type MiddlewareLaunch } from './servers.js';

/** Namespaces a routed row's keys are spread over: one per backend. */
export const ROUTED_NAMESPACES = 4;

/** The resource a row's keys live under on mw-routed: a rule names it in `kinds`, so it is fixed per row. */
export function routedResource(row: string): string {
  return `bench-${row}`;
}

/** Where a row's keys go on mw-routed: loadgen's --prefix and --namespaces. */
export function routedKeyArgs(row: string): string[] {
  return ['--prefix', `/registry/${routedResource(row)}/`, '--namespaces', String(ROUTED_NAMESPACES)];
}

/** Every resource a routed row may use: each row runs once per server, so the row name makes it unique. */
const ROUTED_KINDS = [...ROWS, ...OPT_IN_ROWS].map((r) => routedResource(r.name));

/**
 * The routed topology document: namespace ns-<i> of every bench resource to `backends[i - 1]` (ns-0: the
 * default backend). Exported for the test that checks the split with the router's own matcher.
 */
export function routedTopology(endpoints: { postgres: string; etcd: string; child: string }): { backends: object[] } {
  const rule = (name: string, endpoint: string, ns: number) => ({ name, endpoint, namespace: { namespace: `ns-${ns}`, kinds: ROUTED_KINDS } });
  return { backends: [rule('postgres', endpoints.postgres, 1), rule('etcd', endpoints.etcd, 2), rule('child', endpoints.child, 3)] };
}

/** A temp dir holding a topology file; removed at cleanup. */
async function topologyFile(doc: object): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hk-bench-topology-'));
  onCleanup(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'topology.yaml');
  await writeFile(file, stringify(doc));
  return file;
}

/** Keys starting with `prefix` in an etcd, counted by a Range (count_only) on the etcd itself. */
async function etcdCount(address: string, prefix: string): Promise<number> {
  const client = new EtcdClient(address);
  try {
    return Number((await client.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix), count_only: true })).count);
  } finally {
    client.close();
  }
}

/** mw-routed: the parent on SQLite, PostgreSQL, a real etcd and a child middleware on SQLite. */
export async function startRouted(launch: MiddlewareLaunch = {}): Promise<BenchServer> {
  const stores = { default: await createScratchStore('sqlite'), postgres: await createScratchStore('postgres'), child: await createScratchStore('sqlite') };
  const disposals = Object.entries(stores).map(([name, store]) => onCleanup(`dispose mw-routed ${name} store`, () => store.dispose()));
  const etcd = await startEtcd();
  const child = await launchMiddleware('routed child, sqlite', stores.child.endpoint, launch);
  const file = await topologyFile(routedTopology({ postgres: stores.postgres.endpoint, etcd: `http://${etcd.address}`, child: `http://${child.address}` }));
  const parent = await launchMiddleware('routed parent, sqlite', stores.default.endpoint, { ...launch, extraArgs: [...(launch.extraArgs ?? []), '--topology-config', `file://${file}`] });
  const count = async (endpoint: string) => (await storedKeys(endpoint)).filter((k) => k.startsWith('/registry/bench-')).length;
  return {
    target: 'mw-routed',
    address: parent.address,
    pid: parent.pid,
    helpers: [{ pid: child.pid, label: 'child' }, { pid: etcd.pid, label: 'etcd' }],
    metricsUrl: parent.metricsUrl,
    logTail: parent.logTail,
    keyArgs: routedKeyArgs,
    storedKeys: async () => ({
      'sqlite (default)': await count(stores.default.endpoint),
      postgres: await count(stores.postgres.endpoint),
      etcd: await etcdCount(etcd.address, '/registry/bench-'),
      'child middleware': await count(stores.child.endpoint),
    }),
    stop: async () => {
      await parent.stop();
      await child.stop();
      await etcd.stop();
      for (const dispose of disposals) await dispose();
    },
  };
}

/** mw-two-layer: parent -> child -> SQLite; every bench key (`/registry/bench/`) is routed to the child. */
export async function startTwoLayer(launch: MiddlewareLaunch = {}): Promise<BenchServer> {
  const stores = { parent: await createScratchStore('sqlite'), child: await createScratchStore('sqlite') };
  const disposals = Object.entries(stores).map(([name, store]) => onCleanup(`dispose mw-two-layer ${name} store`, () => store.dispose()));
  const child = await launchMiddleware('two-layer child, sqlite', stores.child.endpoint, launch);
  const file = await topologyFile({ backends: [{ name: 'child', endpoint: `http://${child.address}`, prefix: { prefix: 'bench/' } }] });
  const parent = await launchMiddleware('two-layer parent, sqlite', stores.parent.endpoint, { ...launch, extraArgs: [...(launch.extraArgs ?? []), '--topology-config', `file://${file}`] });
  const count = async (endpoint: string) => (await storedKeys(endpoint)).filter((k) => k.startsWith('/registry/bench/')).length;
  return {
    target: 'mw-two-layer',
    address: parent.address,
    pid: parent.pid,
    helpers: [{ pid: child.pid, label: 'child' }],
    metricsUrl: parent.metricsUrl,
    logTail: parent.logTail,
    storedKeys: async () => ({ 'sqlite (parent)': await count(stores.parent.endpoint), 'child middleware': await count(stores.child.endpoint) }),
    stop: async () => {
      await parent.stop();
      await child.stop();
      for (const dispose of disposals) await dispose();
    },
  };
}

/**
 * A real kube-apiserver on the real middleware process, over one of the databases or a routed topology, with
 * readers of where keys physically landed. stop() stops both and drops the databases.
 *
 * The routed topology is the one a platform team would write: a namespace on PostgreSQL, a custom-resource
 * group on MariaDB, everything else on the default SQLite backend.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { stringify } from 'yaml';
import { parseEndpoint } from '../../middleware/src/topology/endpoint.js';
import { skipUnless } from './env.js';
import { KubeApiServer } from './kube-apiserver.js';
import { Middleware } from './middleware.js';
import { keysIn } from './routed.js';
import { createScratchStore, type ScratchStore } from './scratch-store.js';
import { skipUnlessTool } from './tools.js';

export const KUBE_TARGETS = ['sqlite', 'postgres', 'mariadb', 'routed'] as const;
export type KubeTarget = (typeof KUBE_TARGETS)[number];

/** The targets to run: all, or those named in HARIKUBE_TEST_KUBE_TARGETS (comma list, e.g. `sqlite,routed`). */
export function selectedKubeTargets(): KubeTarget[] {
  const raw = process.env.HARIKUBE_TEST_KUBE_TARGETS?.trim();
  if (!raw) return [...KUBE_TARGETS];
  const names = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!(KUBE_TARGETS as readonly string[]).includes(n)) throw new Error(`HARIKUBE_TEST_KUBE_TARGETS: unknown target "${n}" (known: ${KUBE_TARGETS.join(', ')})`);
  }
  return names as KubeTarget[];
}

/** The routed target's rules: this namespace on PostgreSQL, this custom-resource group on MariaDB. */
export const ROUTED_NAMESPACE = 'team-pg';
export const ROUTED_GROUP = 'widgets.mariadb.example.com';

/** Skip message (or false) for a target: kube-apiserver must be built and its databases reachable. */
export async function kubeTargetSkip(target: KubeTarget): Promise<string | false> {
  const tool = skipUnlessTool('kube-apiserver');
  if (tool) return tool;
  if (target === 'postgres') return skipUnless('postgres');
  if (target === 'mariadb') return skipUnless('mysql');
  if (target === 'routed') return skipUnless('postgres', 'mysql');
  return false;
}

/** Distinct keys (as strings) stored in the kv log of the database at `endpoint`, deleted keys included. */
export async function storedKeys(endpoint: string): Promise<string[]> {
  const e = parseEndpoint(endpoint);
  if (e.kind === 'sqlite') return keysIn(e.path);
  if (e.kind === 'postgres') {
    const client = new pg.Client({ host: e.host, port: e.port, user: e.user, password: e.password, database: e.database });
    await client.connect();
    try {
      const res = await client.query<{ name: Buffer }>('SELECT DISTINCT name FROM kv ORDER BY name');
      return res.rows.map((r) => r.name.toString());
    } finally {
      await client.end();
    }
  }
  if (e.kind === 'mysql') {
    const conn = await mysql.createConnection({ host: e.host, port: e.port, user: e.user, password: e.password, database: e.database });
    try {
      const [rows] = await conn.query('SELECT DISTINCT name FROM kv ORDER BY name');
      return (rows as { name: Buffer }[]).map((r) => Buffer.from(r.name).toString());
    } finally {
      await conn.end();
    }
  }
  throw new Error(`storedKeys: unsupported endpoint kind ${e.kind}`);
}

export interface KubeStackOptions {
  /** More middleware flags. */
  middlewareArgs?: string[];
  /** More kube-apiserver flags. */
  apiServerArgs?: string[];
}

export class KubeStack {
  private constructor(
    readonly target: KubeTarget,
    readonly middleware: Middleware,
    readonly api: KubeApiServer,
    /** The default backend first; for `routed`, then PostgreSQL (the namespace) and MariaDB (the group). */
    readonly stores: ScratchStore[],
    private readonly dir: string,
  ) {}

  static async start(target: KubeTarget, options: KubeStackOptions = {}): Promise<KubeStack> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'hk-kube-stack-'));
    const stores: ScratchStore[] = [];
    let middleware: Middleware | undefined;
    try {
      const args = [...(options.middlewareArgs ?? [])];
      if (target === 'routed') {
        stores.push(await createScratchStore('sqlite'), await createScratchStore('postgres'), await createScratchStore('mysql'));
        const topology = path.join(dir, 'topology.yaml');
        await writeFile(
          topology,
          stringify({
            backends: [
              { name: 'team-pg', endpoint: stores[1]!.endpoint, namespace: { namespace: ROUTED_NAMESPACE } },
              { name: 'widgets', endpoint: stores[2]!.endpoint, customresource: { group: ROUTED_GROUP } },
            ],
          }),
        );
        args.push('--topology-config', `file://${topology}`);
      } else {
        stores.push(await createScratchStore(target === 'mariadb' ? 'mysql' : target));
      }
      middleware = await Middleware.start({ endpoint: stores[0]!.endpoint, extraArgs: args });
      const api = await KubeApiServer.start({ etcd: middleware.address, label: `on middleware/${target}`, extraArgs: options.apiServerArgs });
      return new KubeStack(target, middleware, api, stores, dir);
    } catch (err) {
      await middleware?.stop();
      await Promise.all(stores.map((s) => s.dispose().catch(() => undefined)));
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Keys stored in each backend, by role. */
  async keysByBackend(): Promise<{ default: string[]; postgres?: string[]; mariadb?: string[] }> {
    const [d, p, m] = await Promise.all(this.stores.map((s) => storedKeys(s.endpoint)));
    return this.target === 'routed' ? { default: d!, postgres: p!, mariadb: m! } : { default: d! };
  }

  async stop(): Promise<void> {
    await this.api.destroy();
    await this.middleware.stop();
    await Promise.all(this.stores.map((s) => s.dispose().catch(() => undefined)));
    await rm(this.dir, { recursive: true, force: true });
  }
}

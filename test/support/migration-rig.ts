/**
 * The real middleware process with a topology file the test rewrites (hot reload) and a migration rate, plus
 * what the migration tests read and check through it: GET /migrations, metrics, bulk loads, paged lists
 * pinned to a revision, watches from a revision, and every acknowledged write read back at its revision.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import type { MigrationStatus, SourceStatus } from '../../middleware/src/migration/status.js';
import type { BackendRule } from '../../middleware/src/topology/schema.js';
import { b, prefixEnd } from './bytes.js';
import type { Event, KeyValue } from './etcd-types.js';
import { EtcdClient } from './grpc.js';
import { metricsPage, unlabelledValue } from './metrics.js';
import { Middleware } from './middleware.js';
import { waitUntil } from './wait.js';
import type { Attempt } from './write-model.js';

export type { MigrationStatus, SourceStatus };

export interface RigOptions {
  /** The middleware's --endpoint (the default backend). */
  endpoint: string;
  /** Rules in effect at start. */
  rules?: BackendRule[];
  /** --migration-rate, keys/s (0: no limit). */
  migrationRate: number;
  extraArgs?: string[];
}

export class MigrationRig {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'hk-migration-'));
  readonly topologyFile = path.join(this.dir, 'topology.yaml');
  middleware!: Middleware;

  private constructor() {}

  static async start(opts: RigOptions): Promise<MigrationRig> {
    const rig = new MigrationRig();
    rig.writeTopology(opts.rules ?? []);
    try {
      rig.middleware = await Middleware.start({
        endpoint: opts.endpoint,
        // only the tests' pinned revisions matter; nothing compacts under them
        compactInterval: '0',
        extraArgs: ['--topology-config', `file://${rig.topologyFile}`, '--migration-rate', String(opts.migrationRate), ...(opts.extraArgs ?? [])],
      });
    } catch (err) {
      rig.removeDir();
      throw err;
    }
    return rig;
  }

  get address(): string {
    return this.middleware.address;
  }

  /** Replaces the topology file atomically, as an editor or a volume update does; the middleware reloads it. */
  writeTopology(rules: BackendRule[]): void {
    const tmp = `${this.topologyFile}.tmp`;
    writeFileSync(tmp, stringify({ backends: rules }));
    renameSync(tmp, this.topologyFile);
  }

  async status(): Promise<MigrationStatus> {
    const res = await fetch(`http://${this.middleware.metricsAddress}/migrations`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(res.status, 200, `GET /migrations answered ${res.status}`);
    return (await res.json()) as MigrationStatus;
  }

  /** Polls GET /migrations until `pick` returns something. */
  waitStatus<T>(what: string, pick: (s: MigrationStatus) => T | undefined, timeoutMs = 120_000, intervalMs = 50): Promise<T> {
    let last: MigrationStatus | undefined;
    return waitUntil(
      what,
      async () => {
        last = await this.status();
        return pick(last);
      },
      { timeoutMs, intervalMs },
    ).catch((err: Error) => {
      // the last status says where the migration was instead
      throw new Error(`${err.message}; last GET /migrations: ${JSON.stringify(last)}`, { cause: err });
    });
  }

  /** The source `name` ("" = default backend) in the status, if listed. */
  static source(s: MigrationStatus, name: string): SourceStatus | undefined {
    return s.sources.find((x) => x.source === name);
  }

  /** The value of an unlabelled metric, undefined when absent. */
  async metric(name: string): Promise<number | undefined> {
    return unlabelledValue(await metricsPage(this.middleware, 5_000), name);
  }

  /** The process's recent output (JSON log lines). */
  log(): string {
    return this.middleware.process?.tail() ?? '';
  }

  async stop(): Promise<void> {
    await this.middleware?.stop();
    this.removeDir();
  }

  private removeDir(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Stores `keys` with `valueOf(key)` in multi-put Txns of 100 (one revision per Txn). */
export async function loadKeys(client: EtcdClient, keys: string[], valueOf: (key: string) => string): Promise<void> {
  for (let i = 0; i < keys.length; i += 100) {
    const success = keys.slice(i, i + 100).map((k) => ({ request_put: { key: b(k), value: b(valueOf(k)) } }));
    await client.txn({ success });
  }
}

/** Every live key under `prefix` at `revision` (0: now), in one Range. */
export async function listAll(client: EtcdClient, prefix: string, revision = 0): Promise<{ kvs: KeyValue[]; revision: number }> {
  const res = await client.range({ key: b(prefix), range_end: prefixEnd(prefix), revision });
  assert.equal(res.more, false);
  assert.equal(Number(res.count), res.kvs.length, `count of ${prefix} at ${revision || 'now'} is not the number of keys listed`);
  return { kvs: res.kvs, revision: Number(res.header.revision) };
}

/**
 * A paged list of `prefix` pinned to `revision` (pages of `limit`, as kube-apiserver lists), `between` awaited
 * between pages. A page that fails (the server was killed) is asked again with a fresh connection, for up
 * to `retryMs`. `signal` ends it early (a test that failed), with an error.
 */
export async function pagedList(
  address: string,
  prefix: string,
  revision: number,
  limit: number,
  between: () => Promise<void>,
  { retryMs = 120_000, signal }: { retryMs?: number; signal?: AbortSignal } = {},
): Promise<{ kvs: KeyValue[]; pages: number; retries: number }> {
  const kvs: KeyValue[] = [];
  let client = new EtcdClient(address);
  let start = b(prefix);
  let pages = 0;
  let retries = 0;
  const giveUp = Date.now() + retryMs;
  try {
    for (;;) {
      signal?.throwIfAborted();
      let res;
      try {
        res = await client.range({ key: start, range_end: prefixEnd(prefix), revision, limit });
      } catch (err) {
        if (Date.now() > giveUp) throw new Error(`paged list of ${prefix} at revision ${revision}: page ${pages + 1} failed for ${retryMs} ms: ${(err as Error).message}`);
        retries++;
        client.close();
        await sleep(300);
        client = new EtcdClient(address);
        continue;
      }
      pages++;
      assert.equal(Number(res.header.revision) >= revision, true);
      kvs.push(...res.kvs);
      if (!res.more) return { kvs, pages, retries };
      start = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
      await between();
    }
  } finally {
    client.close();
  }
}

/** A watch with prev_kv on `prefix` from `startRevision`; `events()` is what it delivered so far. */
export async function watchFrom(client: EtcdClient, prefix: string, startRevision: number): Promise<{ events(): Event[]; until(revision: number, timeoutMs?: number): Promise<Event[]>; close(): void }> {
  const stream = client.watch();
  const created = await stream.create({ key: b(prefix), range_end: prefixEnd(prefix), start_revision: startRevision, prev_kv: true });
  assert.equal(created.canceled, false, `watch of ${prefix} from ${startRevision} was refused: ${created.cancel_reason}`);
  const id = created.watch_id;
  const events = () => stream.eventsOf(id);
  return {
    events,
    /** Waits until an event at or above `revision` arrived (it must come: a write at `revision` is in range). */
    until: (revision, timeoutMs = 60_000) =>
      stream.waitFor(`the watch of ${prefix} from ${startRevision} to reach revision ${revision}`, () => (events().some((e) => Number(e.kv.mod_revision) >= revision) ? events() : undefined), timeoutMs),
    close: () => stream.close(),
  };
}

/** Every acknowledged write reads back at its own revision: a put with its value (and mod revision), a delete as absent. */
export async function checkReadableAtRevision(client: EtcdClient, attempts: Attempt[]): Promise<void> {
  for (const a of attempts) {
    if (!a.acked || a.revision === undefined) continue;
    const res = await client.range({ key: b(a.key), revision: a.revision });
    if (a.op === 'put') {
      const kv = res.kvs[0];
      assert.equal(kv?.value.toString(), a.value, `${a.key} at revision ${a.revision} (its put of ${a.value})`);
      assert.equal(Number(kv!.mod_revision), a.revision, `${a.key} at revision ${a.revision}: mod revision`);
    } else {
      assert.equal(res.kvs.length, 0, `${a.key} at revision ${a.revision} (its delete) still reads ${res.kvs[0]?.value.toString()}`);
    }
  }
}

/** Zero-padded key names `${prefix}${i}`, for i in [0, count). */
export function keyNames(prefix: string, count: number, width = 4): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(width, '0')}`);
}

/** A list of everything under a prefix, taken at some moment: must be the writers' state at its revision. */
export interface Snapshot {
  revision: number;
  kvs: KeyValue[];
}

/**
 * Lists `prefix` every `everyMs` until `stop()`, keeping each answer (revision and keys): checked afterwards
 * against the history, so reads while keys move are one consistent view (a key deleted where it moved to
 * must not show the copy still in the source, and no key twice).
 */
export function snapshots(address: string, prefix: string, everyMs: number): { stop(): Promise<Snapshot[]> } {
  const taken: Snapshot[] = [];
  let stopped = false;
  const client = new EtcdClient(address);
  const loop = (async () => {
    while (!stopped) {
      const { kvs, revision } = await listAll(client, prefix);
      taken.push({ revision, kvs });
      await sleep(everyMs);
    }
  })();
  // a failed list is reported by stop()
  loop.catch(() => undefined);
  return {
    stop: async () => {
      stopped = true;
      try {
        await loop;
      } finally {
        client.close();
      }
      return taken;
    },
  };
}

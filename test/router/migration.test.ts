/**
 * Online migration in one process over real databases: a topology change routes existing keys to another
 * backend and the mover moves them while writers and watchers run. Afterwards every acknowledged write is
 * readable at its revision, the final state is the writers' state, a watch saw exactly the writers' events
 * (copies are not changes), a list pinned before the change paged consistently across it, and the source
 * holds none of the moved keys. Also: moving a range back while it is still moving.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Backend, RangeQuery } from '../../middleware/src/backends/backend.js';
import { openBackend } from '../../middleware/src/backends/index.js';
import { META } from '../../middleware/src/backends/meta.js';
import { isMovable, type MovableBackend } from '../../middleware/src/backends/movable.js';
import { WatchEvent } from '../../middleware/src/mvcc/watch-event.js';
import { Store } from '../../middleware/src/mvcc/store.js';
import { Watcher, type WatchSink } from '../../middleware/src/mvcc/watch-hub.js';
import { Mover } from '../../middleware/src/migration/mover.js';
import { RoutedBackend } from '../../middleware/src/router/routed-backend.js';
import { TopologyApplier } from '../../middleware/src/server/topology-applier.js';
import type { BackendRule, TopologyDocument } from '../../middleware/src/topology/schema.js';
import { b, prefixEnd } from '../support/bytes.js';
import { skipUnless } from '../support/env.js';
import { Etcd } from '../support/etcd.js';
import { EtcdClient } from '../support/grpc.js';
import { createScratchStore, type ScratchStore, type StoreKind } from '../support/scratch-store.js';
import { waitUntil } from '../support/wait.js';

const factory = (rule: BackendRule) => openBackend(rule.endpoint, { tls: rule.backendTLS, pool: rule.connectionPool });

/** Collects every event of a range watch, live. */
class Collector implements WatchSink {
  closed = false;
  readonly events: WatchEvent[] = [];
  deliver(_w: Watcher, events: WatchEvent[]): boolean {
    this.events.push(...events);
    return true;
  }
  compacted(): void {
    throw new Error('compacted');
  }
  drained(): Promise<void> {
    return Promise.resolve();
  }
  synced(): void {}
  progress(): void {}
}

interface Write {
  key: string;
  value?: string;
  revision: number;
}

class Cluster {
  store!: Store;
  routed!: RoutedBackend;
  applier!: TopologyApplier;
  mover!: Mover;
  readonly scratch: ScratchStore[] = [];

  async open(defaultKind: StoreKind, rate = 0): Promise<void> {
    const def = await this.newStore(defaultKind);
    this.routed = new RoutedBackend(openBackend(def.endpoint), factory);
    this.store = await Store.open({ backend: this.routed, ringEvents: 1 });
    this.mover = new Mover({ host: this.routed, keysPerSecond: rate, backoffMs: 50 });
    this.applier = new TopologyApplier({ store: this.store, routed: this.routed, defaultEndpoint: def.endpoint, factory, onMigration: () => this.mover.kick() });
  }

  async newStore(kind: StoreKind): Promise<ScratchStore> {
    const s = await createScratchStore(kind);
    this.scratch.push(s);
    return s;
  }

  async close(): Promise<void> {
    await this.mover.stop();
    await this.store.close();
    for (const s of this.scratch) await s.dispose().catch(() => undefined);
  }

  async put(key: string, value: string): Promise<Write> {
    const res = await this.store.put({ key: b(key), value: b(value) });
    return { key, value, revision: Number(res.header.revision) };
  }

  /** Deletes `key`; undefined when it did not exist (no revision, no event). */
  async del(key: string): Promise<Write | undefined> {
    const res = await this.store.deleteRange({ key: b(key) });
    return Number(res.deleted) > 0 ? { key, revision: Number(res.header.revision) } : undefined;
  }

  async list(prefix: string, revision = 0): Promise<Map<string, string>> {
    const res = await this.store.range({ key: b(prefix), range_end: prefixEnd(prefix), revision });
    return new Map(res.kvs.map((kv) => [kv.key.toString(), kv.value.toString()]));
  }

  /** Pages of `limit` keys at `revision`, as kube-apiserver lists. */
  async pagedList(prefix: string, revision: number, limit: number, between: () => Promise<void>): Promise<string[]> {
    const keys: string[] = [];
    let start = b(prefix);
    for (;;) {
      const res = await this.store.range({ key: start, range_end: prefixEnd(prefix), revision, limit });
      keys.push(...res.kvs.map((kv) => kv.key.toString()));
      if (!res.more) return keys;
      start = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
      await between();
    }
  }

  /** Storage's history of `prefix` up to `revision` (what watch catch-up reads past the event ring), one line a change. */
  async history(prefix: string, revision: number): Promise<string[]> {
    const rows = await this.routed.changes(1, revision, 0);
    return rows
      .filter((r) => r.key.toString().startsWith(prefix))
      .map((r) => `${r.modRevision}.${r.sub} ${r.deleted ? 'Delete' : 'Put'} ${r.key.toString()} ${r.value.toString()} create=${r.createRevision} version=${r.version} prev=${r.prev?.modRevision ?? '-'}`);
  }

  watch(prefix: string, fromRevision: number): Collector {
    const c = new Collector();
    const options = { prevKv: true, noPut: false, noDelete: false, progressNotify: false };
    this.store.hub.add(new Watcher(`test-${prefix}`, b(prefix), prefixEnd(prefix), options, fromRevision, c));
    return c;
  }

  migrationDone(): Promise<true> {
    return waitUntil('the migration to finish', () => (this.routed.table.migrating ? undefined : true), { timeoutMs: 60_000 });
  }
}

/** Runs writers on `keys` (puts and deletes, bounded) until `stop` resolves; returns every acknowledged write. */
async function writers(c: Cluster, keys: string[], stop: Promise<unknown>, maxWrites = 400): Promise<Write[]> {
  const done: Write[] = [];
  let stopped = false;
  void stop.then(() => (stopped = true));
  let i = 0;
  const one = async (lane: number) => {
    while (!stopped && done.length < maxWrites) {
      const key = keys[(i++ * 7 + lane) % keys.length]!;
      const w = i % 5 === 0 ? await c.del(key) : await c.put(key, `w${i}`);
      if (!w) continue;
      done.push(w);
      // read your write while the key may still have an older copy in the source (other lanes may have
      // written the key since: only a newer revision may differ)
      const got = (await c.store.range({ key: b(key) })).kvs[0];
      if (!got || Number(got.mod_revision) === w.revision) assert.equal(got?.value.toString(), w.value, `read of ${key} after its write at ${w.revision}`);
      else assert.ok(Number(got.mod_revision) > w.revision, `${key}: read revision ${got.mod_revision} is older than its write at ${w.revision}`);
    }
  };
  await Promise.all([one(0), one(1), one(2)]);
  return done;
}

function expectedState(initial: Map<string, string>, writes: Write[]): Map<string, string> {
  const state = new Map(initial);
  for (const w of [...writes].sort((x, y) => x.revision - y.revision)) {
    if (w.value === undefined) state.delete(w.key);
    else state.set(w.key, w.value);
  }
  return state;
}

/** A key-value as clients see it: every field a copy must keep. */
const seen = (kv: { key: Buffer; value: Buffer; create_revision: unknown; mod_revision: unknown; version: unknown; lease: unknown }) =>
  `${kv.key.toString()} ${kv.value.toString()} create=${kv.create_revision} mod=${kv.mod_revision} version=${kv.version} lease=${kv.lease}`;

/**
 * Loads keys (with a history: updates, a delete), changes the topology to `after`, and checks everything
 * while the mover moves them under writers, a watcher and a pinned list; `source()` is the backend the keys
 * leave (checked empty of them at the end).
 */
async function exercise(c: Cluster, after: BackendRule[], moving: string[], staying: string[], prefix: string, source: () => Backend): Promise<void> {
  const initial = new Map<string, string>();
  for (const k of [...moving, ...staying]) initial.set(k, (await c.put(k, `init-${k}`)).value!);
  // some history before the change: second versions, a delete whose tombstone moves too
  for (const k of moving.filter((_, i) => i % 4 === 2)) initial.set(k, (await c.put(k, `v2-${k}`)).value!);
  await c.del(moving[1]!);
  initial.delete(moving[1]!);
  const pinned = c.store.revision;
  const pinnedList = [...(await c.list(prefix, pinned)).keys()];
  const pinnedKvs = (await c.store.range({ key: b(prefix), range_end: prefixEnd(prefix), revision: pinned })).kvs.map(seen);
  const watchFrom = pinned + 1;
  const watcher = c.watch(prefix, watchFrom);
  // the whole history in storage (what watch catch-up reads), before the change
  const history = await c.history(prefix, pinned);

  await c.applier.apply({ backends: after } as TopologyDocument, 'test');
  assert.ok(c.routed.table.migrating);

  const finished = c.migrationDone();
  const [writes, paged] = await Promise.all([
    writers(c, [...moving, ...staying], finished),
    c.pagedList(prefix, pinned, 7, () => new Promise((r) => setTimeout(r, 5))),
  ]);
  await finished;

  // a list pinned before the change paged consistently while keys moved under it
  assert.deepEqual(paged, pinnedList);
  // every acknowledged write is readable at its own revision
  for (const w of writes) {
    const res = await c.store.range({ key: b(w.key), revision: w.revision });
    assert.equal(res.kvs[0]?.value.toString(), w.value, `${w.key} at revision ${w.revision}`);
    if (w.value !== undefined) assert.equal(Number(res.kvs[0]!.mod_revision), w.revision);
  }
  // the final state is the writers' state
  const want = expectedState(initial, writes);
  assert.deepEqual(await c.list(prefix), new Map([...want].sort(([x], [y]) => (x < y ? -1 : 1))));
  // the watch saw exactly the writes, in order: no event for a copy
  await waitUntil(`the watcher to see every write (${writes.length})`, () => (watcher.events.length >= writes.length ? true : undefined)).catch((err) => {
    const seen = new Set(watcher.events.map((e) => e.revision));
    const missing = writes.filter((w) => !seen.has(w.revision)).map((w) => `${w.revision} ${w.key}`);
    throw new Error(`${(err as Error).message}: saw ${watcher.events.length}, missing ${missing.slice(0, 10).join(', ')}`);
  });
  assert.deepEqual(
    watcher.events.map((e) => `${e.revision} ${e.type} ${e.key.toString()}`),
    [...writes].sort((x, y) => x.revision - y.revision).map((w) => `${w.revision} ${w.value === undefined ? 'Delete' : 'Put'} ${w.key}`),
  );
  // a watch that catches up from storage after the move sees the same history once, with prev_kv where it existed
  const late = c.watch(prefix, watchFrom);
  await waitUntil('catch-up from storage', () => (late.events.length >= writes.length ? true : undefined));
  assert.deepEqual(late.events.map((e) => `${e.revision} ${e.type}`), watcher.events.map((e) => `${e.revision} ${e.type}`));
  assert.deepEqual(late.events.map((e) => e.prevKv?.mod_revision.toString()), watcher.events.map((e) => e.prevKv?.mod_revision.toString()));
  // the history before the change, read from storage after the move: unchanged (revisions, versions, prev_kv), each once
  assert.deepEqual(await c.history(prefix, pinned), history);
  // and since: exactly the writes, each with its predecessor where it had one (read from storage, not the hub's cache)
  const since = (await c.routed.changes(watchFrom, c.store.revision, 0)).filter((r) => r.key.toString().startsWith(prefix));
  assert.deepEqual(
    since.map((r) => `${r.modRevision} ${r.deleted ? 'Delete' : 'Put'} ${r.key.toString()} prev=${r.prev?.modRevision ?? '-'}`),
    watcher.events.map((e) => `${e.revision} ${e.type} ${e.key.toString()} prev=${e.prevKv?.mod_revision ?? '-'}`),
  );
  // the state at the pinned revision, read after the move: every key with its revisions and version
  assert.deepEqual((await c.store.range({ key: b(prefix), range_end: prefixEnd(prefix), revision: pinned })).kvs.map(seen), pinnedKvs);

  // nothing of the moved range is left in the source; the durable state is empty again
  const from = source();
  const read = (q: RangeQuery) => (isMovable(from) ? from.moves.rangeWithTombstones(q) : from.range(q));
  for (const k of moving) assert.equal((await read({ start: b(k), revision: Number.MAX_SAFE_INTEGER, limit: 1 })).length, 0, `${k} left in ${from.description}`);
  const def = c.routed.table.defaultBackend;
  assert.equal((await def.getMeta(META.migrations))?.toString(), '{"sources":[]}');
  assert.equal(c.mover.status().sources.at(-1)?.phase, 'done');
}

describe('online migration', async () => {
  const pgSkip = await skipUnless('postgres');
  const mysqlSkip = await skipUnless('mysql');
  const etcdSkip = await skipUnless('etcd');

  it('moves a namespace from SQLite to PostgreSQL while writers, a watcher and a pinned list run', { skip: pgSkip }, async () => {
    const c = new Cluster();
    await c.open('sqlite', 40);
    try {
      // under the limit (40 keys/s) keys move in batches of a tenth of a second's worth, not a page at once
      const steps: number[] = [];
      let last = 0;
      c.mover.onChange((s) => {
        const moved = s.sources.reduce((n, x) => n + x.keysMoved, 0);
        if (moved > last) steps.push(moved - last);
        last = moved;
      });
      const moving = Array.from({ length: 60 }, (_, i) => `/registry/pods/team-a/p${String(i).padStart(3, '0')}`);
      const staying = Array.from({ length: 20 }, (_, i) => `/registry/pods/team-b/p${String(i).padStart(3, '0')}`);
      const target = await c.newStore('postgres');
      await exercise(c, [{ name: 'team-a', endpoint: target.endpoint, namespace: { namespace: 'team-a' } }], moving, staying, '/registry/pods/', () => c.routed.table.defaultBackend);
      assert.ok(steps.length > 0 && Math.max(...steps) <= 4, `keys moved per step at 40 keys/s: ${steps.join(', ')}`);
    } finally {
      await c.close();
    }
  });

  it('moves a custom-resource group from MariaDB to SQLite', { skip: mysqlSkip }, async () => {
    const c = new Cluster();
    await c.open('mysql', 40);
    try {
      const moving = Array.from({ length: 40 }, (_, i) => `/registry/stable.example.com/shirts/default/s${String(i).padStart(3, '0')}`);
      const staying = Array.from({ length: 10 }, (_, i) => `/registry/stable.example.com0/x${i}`);
      const target = await c.newStore('sqlite');
      await exercise(c, [{ name: 'shirts', endpoint: target.endpoint, customresource: { group: 'stable.example.com' } }], moving, staying, '/registry/stable.example.com', () => c.routed.table.defaultBackend);
    } finally {
      await c.close();
    }
  });

  it('moves a namespace from SQLite into a real etcd, and back out of it', { skip: etcdSkip }, async () => {
    const etcd = await Etcd.start();
    const c = new Cluster();
    await c.open('sqlite', 40);
    try {
      const moving = Array.from({ length: 60 }, (_, i) => `/registry/pods/team-a/p${String(i).padStart(3, '0')}`);
      const staying = Array.from({ length: 20 }, (_, i) => `/registry/pods/team-b/p${String(i).padStart(3, '0')}`);
      const into = { name: 'etcd', endpoint: etcd.clientUrl, namespace: { namespace: 'team-a' } };
      await exercise(c, [into], moving, staying, '/registry/pods/', () => c.routed.table.defaultBackend);
      // compaction after the move: the copied rows beside the keys go (the keys themselves carry them now), reads stay
      const etcdSide = async () => {
        const direct = new EtcdClient(etcd.address);
        try {
          return Number((await direct.range({ key: b('harikube/copied/'), range_end: b('harikube/copied0'), count_only: true })).count);
        } finally {
          direct.close();
        }
      };
      const copied = await etcdSide();
      const state = await c.list('/registry/pods/');
      const compactAt = c.store.revision;
      await c.store.compact(compactAt, { physical: true });
      assert.ok(copied > 0 && (await etcdSide()) < copied / 4, `compaction left ${await etcdSide()} of ${copied} copied rows`);
      assert.deepEqual(await c.list('/registry/pods/'), state);
      assert.deepEqual(await c.list('/registry/pods/', compactAt), state);
      // out of the etcd (with the pods moved in above): its rule now takes another namespace
      const back = Array.from({ length: 40 }, (_, i) => `/registry/configmaps/team-a/c${String(i).padStart(3, '0')}`);
      const stay = Array.from({ length: 10 }, (_, i) => `/registry/configmaps/team-b/c${String(i).padStart(3, '0')}`);
      await exercise(c, [{ ...into, namespace: { namespace: 'team-z' } }], back, stay, '/registry/configmaps/', () => c.routed.table.backends.get('etcd')!);
    } finally {
      await c.close();
      await etcd.destroy();
    }
  });

  it('a key copied but not yet dropped (a crash between the two) counts once in reads and watches, and the mover finishes it', async () => {
    const c = new Cluster();
    await c.open('sqlite');
    try {
      const keys = Array.from({ length: 30 }, (_, i) => `/registry/secrets/ns/s${String(i).padStart(2, '0')}`);
      for (const k of keys) await c.put(k, `v-${k}`);
      await c.del(keys[2]!);
      const from = c.store.revision - keys.length;
      const other = await c.newStore('sqlite');
      const applier = new TopologyApplier({ store: c.store, routed: c.routed, defaultEndpoint: 'sqlite://unused.db', factory });
      await applier.apply({ backends: [{ name: 'secrets', endpoint: other.endpoint, prefix: { prefix: 'secrets/' } }] }, 'test');
      const source = c.routed.table.defaultBackend as MovableBackend;
      const target = c.routed.table.backends.get('secrets') as MovableBackend;
      // the mover's first half, for half the keys: their whole history is now in both databases
      const rows = await source.moves.history(b('/registry/secrets/ns/s00'), b('/registry/secrets/ns/s15'), 1000);
      assert.ok((await target.moves.copyIn(rows)) > 15);
      // a delete of a copied key writes a tombstone in the target only; so does an update
      await c.del(keys[3]!);
      await c.put(keys[4]!, 'new');
      const list = await c.store.range({ key: b('/registry/secrets/'), range_end: prefixEnd('/registry/secrets/') });
      const want = keys.filter((_, i) => i !== 2 && i !== 3);
      assert.deepEqual(list.kvs.map((kv) => kv.key.toString()), want);
      assert.equal(Number(list.count), want.length);
      assert.equal(list.kvs.find((kv) => kv.key.toString() === keys[4])!.value.toString(), 'new');
      const page = await c.store.range({ key: b('/registry/secrets/'), range_end: prefixEnd('/registry/secrets/'), limit: 5 });
      assert.deepEqual(page.kvs.map((kv) => kv.key.toString()), want.slice(0, 5));
      // catch-up from storage (one-event ring) sees each revision once, with prev_kv from wherever it is
      const w = c.watch('/registry/secrets/', from);
      await waitUntil('catch-up', () => (w.events.length >= keys.length + 3 ? true : undefined));
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(w.events.map((e) => e.revision), [...new Set(w.events.map((e) => e.revision))].sort((x, y) => x - y));
      assert.equal(w.events.length, keys.length + 3);
      const last = w.events.at(-1)!;
      assert.equal(last.prevKv?.value.toString(), `v-${keys[4]}`, 'the update\'s prev_kv comes from the copy');
      c.mover.kick();
      await c.migrationDone();
      assert.deepEqual((await c.store.range({ key: b('/registry/secrets/'), range_end: prefixEnd('/registry/secrets/') })).kvs.map((kv) => kv.key.toString()), want);
    } finally {
      await c.close();
    }
  });

  it('a range moved back while it is still moving ends where the newest topology says, losing nothing', async () => {
    const c = new Cluster();
    await c.open('sqlite', 50);
    try {
      const keys = Array.from({ length: 80 }, (_, i) => `/registry/configmaps/k${String(i).padStart(3, '0')}`);
      for (const k of keys) await c.put(k, `v-${k}`);
      const other = await c.newStore('sqlite');
      const rule = { name: 'cms', endpoint: other.endpoint, prefix: { prefix: 'configmaps/' } };
      await c.applier.apply({ backends: [rule] }, 'test');
      await waitUntil('some keys to move', () => (c.mover.status().sources[0]?.keysMoved ? true : undefined));
      const w1 = await c.put(keys[0]!, 'while-moving-out');
      await c.applier.apply({ backends: [] }, 'test');
      assert.ok(c.routed.table.migrating, 'the retired "cms" database is now the source');
      const w2 = (await c.del(keys[1]!))!;
      await c.migrationDone();
      const state = await c.list('/registry/configmaps/');
      assert.equal(state.size, keys.length - 1);
      assert.equal(state.get(keys[0]!), 'while-moving-out');
      assert.equal(state.has(keys[1]!), false);
      for (const k of keys.slice(2)) assert.equal(state.get(k), `v-${k}`);
      assert.equal((await c.store.range({ key: b(keys[0]!), revision: w1.revision })).kvs[0]!.value.toString(), 'while-moving-out');
      assert.equal((await c.store.range({ key: b(keys[1]!), revision: w2.revision - 1 })).kvs[0]!.value.toString(), `v-${keys[1]}`);
      assert.equal(c.routed.table.retired.length, 0, 'the emptied database was let go');
    } finally {
      await c.close();
    }
  });
});

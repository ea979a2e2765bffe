/**
 * The read cache (mvcc/latest-cache.ts) over a real Store on SQLite: a Get of a cached key reads no
 * database; a cached key follows every write, delete and lease expiry; a read that raced a write never
 * caches the older row; rows changed without events (a revert handed down to a child layer) are not served
 * from memory afterwards; gets under concurrent writers are linearizable; the byte limit holds.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { Backend, KeyRow, RangeQuery } from '../../middleware/src/backends/backend.js';
import { openBackend } from '../../middleware/src/backends/index.js';
import { LatestCache } from '../../middleware/src/mvcc/latest-cache.js';
import { Store } from '../../middleware/src/mvcc/store.js';
import { WatchEvent } from '../../middleware/src/mvcc/watch-event.js';

const b = (s: string) => Buffer.from(s);

/** The SQLite backend with its Range calls counted and, while `gate` is set, held until it resolves. */
function countingBackend(backend: Backend): Backend & { ranges: number; gate?: Promise<void> } {
  const counted = Object.assign(backend, { ranges: 0, gate: undefined as Promise<void> | undefined });
  const range = backend.range.bind(backend);
  counted.range = async (q: RangeQuery) => {
    counted.ranges++;
    const rows = await range(q);
    if (counted.gate) await counted.gate;
    return rows;
  };
  return counted;
}

async function withStore(fn: (store: Store, backend: ReturnType<typeof countingBackend>) => Promise<void>, readCacheBytes?: number): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hk-read-cache-'));
  const backend = countingBackend(openBackend(`sqlite://${path.join(dir, 'state.db')}`));
  const store = await Store.open({ backend, readCacheBytes });
  try {
    await fn(store, backend);
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const valueOf = async (store: Store, key: string) => (await store.range({ key: b(key) })).kvs[0]?.value.toString();

test('a cached key is read once, then follows puts and deletes without reading the database', async () => {
  await withStore(async (store, backend) => {
    await store.put({ key: b('/a'), value: b('1') });
    const before = backend.ranges;
    assert.equal(await valueOf(store, '/a'), '1');
    assert.equal(backend.ranges, before + 1, 'the first get reads the database');
    assert.equal(await valueOf(store, '/a'), '1');
    assert.equal(await valueOf(store, '/nope'), undefined);
    assert.equal(await valueOf(store, '/nope'), undefined);
    assert.equal(backend.ranges, before + 2, 'a cached key and a cached absence read nothing');

    const put = await store.put({ key: b('/a'), value: b('2') });
    const got = (await store.range({ key: b('/a') })).kvs[0]!;
    assert.deepEqual([got.value.toString(), String(got.mod_revision), String(got.version)], ['2', String(put.header.revision), '2']);
    await store.put({ key: b('/nope'), value: b('now') });
    assert.equal(await valueOf(store, '/nope'), 'now');
    await store.deleteRange({ key: b('/a') });
    assert.equal(await valueOf(store, '/a'), undefined);
    assert.equal(backend.ranges, before + 2, 'writes keep cached keys current: no read of the database');

    // what a Range asks of the row still applies: keys_only, count_only, revision filters
    const keysOnly = await store.range({ key: b('/nope'), keys_only: true });
    assert.equal(keysOnly.kvs[0]!.value.length, 0);
    assert.equal(Number((await store.range({ key: b('/nope'), count_only: true })).count), 1);
    assert.equal((await store.range({ key: b('/nope'), min_mod_revision: store.revision + 1 })).kvs.length, 0);
    // an older revision is read from the database
    await store.range({ key: b('/nope'), revision: store.revision - 1 });
    assert.equal(backend.ranges, before + 3);
  });
});

test('a read that raced a write does not cache the older row it read', async () => {
  await withStore(async (store, backend) => {
    await store.put({ key: b('/k'), value: b('old') });
    let release!: () => void;
    backend.gate = new Promise<void>((r) => (release = r));
    // the get reads at the current revision, then waits before answering
    const slow = store.range({ key: b('/k') });
    await new Promise((r) => setTimeout(r, 20));
    backend.gate = undefined;
    await store.put({ key: b('/k'), value: b('new') });
    release();
    assert.equal((await slow).kvs[0]!.value.toString(), 'old', 'the slow get answers at the revision it started at');
    assert.equal(await valueOf(store, '/k'), 'new', 'and did not leave the older row in the cache');
  });
});

test('a lease expiry updates a cached key', async () => {
  await withStore(async (store) => {
    const lease = await store.leaseGrant('0', 2);
    await store.put({ key: b('/leased'), value: b('v'), lease: lease.id });
    assert.equal(await valueOf(store, '/leased'), 'v');
    await store.leaseRevoke(lease.id);
    assert.equal(await valueOf(store, '/leased'), undefined);
  });
});

test('a revert handed down to a child layer is not hidden by the cache', async () => {
  await withStore(async (store) => {
    const row = (rev: number, create: number, version: number): KeyRow => ({
      key: b('/c'),
      value: b(`c@${rev}`),
      modRevision: rev,
      sub: 0,
      createRevision: create,
      prevRevision: rev === create ? 0 : create,
      version,
      lease: '0',
      deleted: false,
    });
    await store.child.write('p1', [row(50, 50, 1)], 'p1');
    await store.child.write('p1', [row(60, 50, 2)], undefined);
    assert.equal(await valueOf(store, '/c'), 'c@60');
    await store.child.revert('p1', 60, 60);
    assert.equal(await valueOf(store, '/c'), 'c@50');
  });
});

test('gets under concurrent writers see every acknowledged put (linearizable)', async () => {
  await withStore(async (store) => {
    const keys = ['/l/0', '/l/1', '/l/2'];
    /** Per key: the revision of the newest acknowledged put, and the value written at each revision. */
    const acked = new Map<string, number>();
    const written = new Map<number, string>();
    const deadline = Date.now() + 3000;
    let gets = 0;
    const writer = async (w: number) => {
      for (let i = 0; i < 150 && Date.now() < deadline; i++) {
        const key = keys[(w + i) % keys.length]!;
        const value = `w${w}-${i}`;
        const res = await store.put({ key: b(key), value: b(value) });
        const rev = Number(res.header.revision);
        written.set(rev, value);
        if (rev > (acked.get(key) ?? 0)) acked.set(key, rev);
      }
    };
    let writing = true;
    const reader = async (r: number) => {
      // until the writers are done: a cached get answers at once, so readers would otherwise finish first
      for (let i = 0; writing && i < 20_000 && Date.now() < deadline; i++) {
        await new Promise((resolve) => setImmediate(resolve));
        const key = keys[(r + i) % keys.length]!;
        const floor = acked.get(key) ?? 0;
        const kv = (await store.range({ key: b(key) })).kvs[0];
        gets++;
        if (floor === 0 && !kv) continue;
        assert.ok(kv, `${key}: no value after a put at ${floor} was acknowledged`);
        const mod = Number(kv.mod_revision);
        assert.ok(mod >= floor, `${key}: a get answered revision ${mod} after the put at ${floor} was acknowledged`);
        if (written.has(mod)) assert.equal(kv.value.toString(), written.get(mod));
      }
    };
    const writers = Promise.all([writer(0), writer(1), writer(2)]).finally(() => (writing = false));
    await Promise.all([writers, reader(0), reader(1), reader(2), reader(3)]);
    assert.ok(gets > 100, `${gets} gets ran`);
  });
});

test('the cache keeps to its byte limit, least recently used out first', () => {
  const cache = new LatestCache(1000);
  const row = (key: string, size: number): KeyRow => ({ key: b(key), value: Buffer.alloc(size), modRevision: 1, sub: 0, createRevision: 1, prevRevision: 0, version: 1, lease: '0', deleted: false });
  const fill = (key: string, size: number) => cache.endFill(cache.beginFill(b(key)), row(key, size), true);
  fill('/a', 200);
  fill('/b', 200);
  assert.ok(cache.get(b('/a')), '/a is now the most recently used');
  fill('/c', 200);
  assert.equal(cache.get(b('/b')), undefined, 'the least recently used went');
  assert.ok(cache.get(b('/a')));
  assert.ok(cache.get(b('/c')));
  // a write to a key not cached adds nothing; a failed read caches nothing
  cache.apply([WatchEvent.fromRow({ ...row('/d', 10), modRevision: 2 }, undefined)]);
  assert.equal(cache.get(b('/d')), undefined);
  cache.endFill(cache.beginFill(b('/e')), undefined, false);
  assert.equal(cache.get(b('/e')), undefined);
  // a clear during a read keeps that read out
  const f = cache.beginFill(b('/f'));
  cache.clear();
  cache.endFill(f, row('/f', 1), true);
  assert.equal(cache.get(b('/f')), undefined);
  assert.equal(cache.get(b('/a')), undefined);
  assert.equal(new LatestCache(0).enabled, false);
});

test('--read-cache-size 0: every get reads the database', async () => {
  await withStore(async (store, backend) => {
    await store.put({ key: b('/a'), value: b('1') });
    const before = backend.ranges;
    await valueOf(store, '/a');
    await valueOf(store, '/a');
    assert.equal(backend.ranges, before + 2);
  }, 0);
});

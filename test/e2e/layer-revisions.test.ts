/**
 * Layers share one revision space (docs/architecture.md, "Layers"): a chain parent -> child -> grandchild of
 * real middleware processes, each over its own SQLite. The same operations run on it and on a real etcd:
 * lists at every revision, a watch from the start and a compaction answer alike. Each layer's database holds
 * its keys at exactly the revisions the parent's clients saw (read from the SQLite files, no envelope, no
 * revision map). A child serves one parent; a plain client writing to a child is refused; kill -9 of the
 * middle layer under writers loses no acknowledged write and reuses no revision.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status as Status } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import { assertAckedWritesKept, type AckedWrites } from '../support/acked-writes.js';
import { skipUnless } from '../support/env.js';
import { Etcd } from '../support/etcd.js';
import { EtcdClient } from '../support/grpc.js';
import { Middleware } from '../support/middleware.js';
import { createScratchStore, type ScratchStore } from '../support/scratch-store.js';
import { waitUntil } from '../support/wait.js';

const skip = await skipUnless('etcd');

const b = (s: string) => Buffer.from(s);
const PREFIX = { key: b('/t/'), range_end: b('/t0') };

interface StoredRow {
  name: string;
  rev: number;
  deleted: number;
  lease: string;
}

/** Every row of a SQLite backend file (all versions and tombstones), read over a separate connection. */
function rowsIn(endpoint: string): StoredRow[] {
  const db = new Database(endpoint.replace('sqlite://', ''), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT name, rev, deleted, CAST(lease AS TEXT) AS lease FROM kv ORDER BY rev, sub').all() as { name: Buffer; rev: number; deleted: number; lease: string }[]).map(
      (r) => ({ name: r.name.toString(), rev: Number(r.rev), deleted: Number(r.deleted), lease: String(r.lease) }),
    );
  } finally {
    db.close();
  }
}

async function topologyFile(dir: string, name: string, backends: unknown[]): Promise<string> {
  const file = path.join(dir, `${name}.yaml`);
  await writeFile(file, stringify({ backends }));
  return `file://${file}`;
}

/** The operations both the chain and the etcd get; returns the revision of each, minus the start revision. */
async function workload(c: EtcdClient): Promise<{ base: number; revs: number[]; lease: string }> {
  const base = Number((await c.range({ key: b('/') })).header.revision);
  const revs: number[] = [];
  const rev = (r: { header: { revision: string | number } }) => revs.push(Number(r.header.revision) - base);
  for (const k of ['/t/p/a', '/t/c/a', '/t/g/a', '/t/g/b', '/t/c/b']) rev(await c.put({ key: b(k), value: b(`${k} v1`) }));
  rev(await c.put({ key: b('/t/g/a'), value: b('/t/g/a v2') }));
  rev(await c.deleteRange({ key: b('/t/c/b') }));
  // one revision over all three layers
  rev(await c.txn({ success: ['/t/p/x', '/t/c/x', '/t/g/x'].map((k) => ({ request_put: { key: b(k), value: b(k) } })) }));
  rev(await c.deleteRange({ key: b('/t/g/'), range_end: b('/t/g0') }));
  const lease = (await c.leaseGrant(60)).ID;
  rev(await c.put({ key: b('/t/g/l'), value: b('leased'), lease }));
  rev(await c.leaseRevoke(lease));
  rev(await c.put({ key: b('/t/c/a'), value: b('/t/c/a v2') }));
  return { base, revs, lease: String(lease) };
}

/** A list in relative revisions (the chain and the etcd may start at different revisions). */
function list(res: { count: string | number; more: boolean; kvs: { key: Buffer; value: Buffer; create_revision: string | number; mod_revision: string | number; version: string | number; lease: string | number }[] }, base: number) {
  return {
    count: Number(res.count),
    more: res.more,
    kvs: res.kvs.map((kv) => [kv.key.toString(), kv.value.toString(), Number(kv.create_revision) - base, Number(kv.mod_revision) - base, Number(kv.version), kv.lease !== '0']),
  };
}

async function code(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as { code?: number }).code;
  }
}

describe('three layers in one revision space', { skip }, () => {
  let dir: string;
  let etcd: Etcd;
  let stores: ScratchStore[];
  let grandchild: Middleware;
  let child: Middleware;
  let parent: Middleware;
  let client: EtcdClient;
  let reference: EtcdClient;
  let ours: { base: number; revs: number[]; lease: string };
  let theirs: { base: number; revs: number[] };

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'hk-layer-revs-'));
    stores = await Promise.all([createScratchStore('sqlite'), createScratchStore('sqlite'), createScratchStore('sqlite'), createScratchStore('sqlite')]);
    etcd = await Etcd.start();
    grandchild = await Middleware.start({ endpoint: stores[2]!.endpoint, compactInterval: '0' });
    const childTopology = await topologyFile(dir, 'child', [{ name: 'deep', endpoint: `http://${grandchild.address}`, regexp: { key: '^/[tw]/g/' } }]);
    child = await Middleware.start({ endpoint: stores[1]!.endpoint, compactInterval: '0', extraArgs: ['--topology-config', childTopology, '--query-timeout', '3s'] });
    const parentTopology = await topologyFile(dir, 'parent', [{ name: 'layer', endpoint: `http://${child.address}`, regexp: { key: '^/[tw]/[cg]/' } }]);
    parent = await Middleware.start({ endpoint: stores[0]!.endpoint, compactInterval: '0', extraArgs: ['--topology-config', parentTopology, '--query-timeout', '3s'] });
    client = new EtcdClient(parent.address);
    reference = new EtcdClient(etcd.address);
    ours = await workload(client);
    theirs = await workload(reference);
  });

  after(async () => {
    client?.close();
    reference?.close();
    await parent?.stop();
    await child?.stop();
    await grandchild?.stop();
    await etcd?.destroy();
    for (const s of stores ?? []) await s.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('answers every write with the revisions the etcd gives', () => {
    assert.deepEqual(ours.revs, theirs.revs);
  });

  it("stores each layer's rows at exactly the parent's revisions, without envelope or revision map", () => {
    const r = (n: number) => ours.base + ours.revs[n]!;
    const grand = rowsIn(stores[2]!.endpoint);
    assert.deepEqual(
      grand.map((row) => [row.name, row.rev, row.deleted]),
      [
        ['/t/g/a', r(2), 0],
        ['/t/g/b', r(3), 0],
        ['/t/g/a', r(5), 0],
        ['/t/g/x', r(7), 0],
        ['/t/g/a', r(8), 1],
        ['/t/g/b', r(8), 1],
        ['/t/g/x', r(8), 1],
        ['/t/g/l', r(9), 0],
        ['/t/g/l', r(10), 1],
      ],
      'the grandchild holds the /t/g/ keys at the global revisions',
    );
    assert.equal(grand.find((row) => row.name === '/t/g/l' && !row.deleted)!.lease, ours.lease, "the grandchild's row keeps the parent's lease ID");
    assert.deepEqual(
      rowsIn(stores[1]!.endpoint).map((row) => [row.name, row.rev, row.deleted]),
      [
        ['/t/c/a', r(1), 0],
        ['/t/c/b', r(4), 0],
        ['/t/c/b', r(6), 1],
        ['/t/c/x', r(7), 0],
        ['/t/c/a', r(11), 0],
      ],
      'the child holds the /t/c/ keys at the global revisions, and nothing else',
    );
    assert.deepEqual(
      rowsIn(stores[0]!.endpoint).map((row) => [row.name, row.rev]),
      [
        ['/t/p/a', r(0)],
        ['/t/p/x', r(7)],
      ],
    );
  });

  it('lists at every revision as the etcd does, through three layers, pages included', async () => {
    for (let i = 0; i <= ours.revs[ours.revs.length - 1]!; i++) {
      const at = (c: EtcdClient, base: number) => c.range({ ...PREFIX, revision: i === 0 ? base : base + i });
      assert.deepEqual(list(await at(client, ours.base), ours.base), list(await at(reference, theirs.base), theirs.base), `list at start + ${i}`);
    }
    const page = (c: EtcdClient, base: number) => c.range({ ...PREFIX, limit: 2, revision: base + 8 });
    assert.deepEqual(list(await page(client, ours.base), ours.base), list(await page(reference, theirs.base), theirs.base), 'a paged list');
  });

  it('watches from the start as the etcd does (every layer, prev_kv, one event per change)', async () => {
    const events = async (c: EtcdClient, base: number) => {
      const w = c.watch();
      try {
        const id = (await w.create({ ...PREFIX, start_revision: String(base + 1), prev_kv: true })).watch_id;
        const evs = await w.waitForEvents(id, 16);
        return evs.map((e) => [e.type ?? 'PUT', e.kv.key.toString(), Number(e.kv.mod_revision) - base, e.prev_kv ? Number(e.prev_kv.mod_revision) - base : null]);
      } finally {
        w.close();
      }
    };
    const mine = await events(client, ours.base);
    assert.equal(mine.length, 16);
    assert.deepEqual(mine, await events(reference, theirs.base));
  });

  it('compacts through three layers as the etcd does, and the old rows leave the grandchild', async () => {
    const at = ours.base + ours.revs[5]!;
    await client.compact(at, true);
    await reference.compact(theirs.base + theirs.revs[5]!, true);
    for (const [c, base] of [[client, ours.base], [reference, theirs.base]] as const) {
      assert.equal(await code(c.range({ ...PREFIX, revision: base + ours.revs[4]! })), Status.OUT_OF_RANGE, 'a read below the compaction fails');
    }
    const read = (c: EtcdClient, base: number) => c.range({ ...PREFIX, revision: base + ours.revs[5]! });
    assert.deepEqual(list(await read(client, ours.base), ours.base), list(await read(reference, theirs.base), theirs.base));
    const grand = rowsIn(stores[2]!.endpoint);
    assert.ok(!grand.some((row) => row.rev === ours.base + ours.revs[2]!), 'the superseded /t/g/a v1 is removed from the grandchild');
    assert.ok(grand.some((row) => row.rev === at), 'the version at the compact revision stays');
    const w = client.watch();
    try {
      const created = await w.create({ ...PREFIX, start_revision: String(ours.base + ours.revs[4]!) });
      const canceled = created.canceled ? created : await w.waitFor('compacted', (rs) => rs.find((r) => r.canceled));
      assert.equal(Number(canceled.compact_revision), at, 'a watch from below the compaction is told the compact revision');
    } finally {
      w.close();
    }
  });

  it('refuses a plain client writing to a child or grandchild, with the reason; reads there see the global revisions', async () => {
    for (const layer of [child, grandchild]) {
      const direct = new EtcdClient(layer.address);
      try {
        for (const attempt of [
          () => direct.put({ key: b('/t/c/direct'), value: b('x') }),
          () => direct.txn({ success: [{ request_put: { key: b('/t/c/direct'), value: b('x') } }] }),
          () => direct.leaseGrant(30),
          () => direct.compact(ours.base + ours.revs[9]!),
        ]) {
          await assert.rejects(attempt(), (err: { code?: number; details?: string }) => {
            assert.equal(err.code, Status.FAILED_PRECONDITION);
            assert.match(err.details ?? '', /child layer of HariKube cluster \S+ and takes writes only from it/);
            return true;
          });
        }
      } finally {
        direct.close();
      }
    }
    const direct = new EtcdClient(child.address);
    try {
      const res = await direct.range({ key: b('/t/c/a') });
      assert.equal(Number(res.kvs[0]!.mod_revision), ours.base + ours.revs[11]!, "the child's own API shows the global revision");
      // a revision above the child's newest: the child holds nothing newer, so that is the state there
      const later = await direct.range({ key: b('/t/c/a'), revision: ours.base + ours.revs[11]! + 1000 });
      assert.equal(later.kvs.length, 1);
    } finally {
      direct.close();
    }
  });

  it('refuses a second parent of a child, naming the parent it has', async () => {
    const other = await createScratchStore('sqlite');
    try {
      const topology = await topologyFile(dir, 'other', [{ name: 'deep', endpoint: `http://${grandchild.address}`, regexp: { key: '^/t/g/' } }]);
      await assert.rejects(Middleware.start({ endpoint: other.endpoint, compactInterval: '0', extraArgs: ['--topology-config', topology] }), /belongs to another HariKube cluster/);
    } finally {
      await other.dispose();
    }
  });

  it('kill -9 of the middle layer under writers: nothing acknowledged lost, no revision reused', async () => {
    const start = BigInt((await client.range({ key: b('/x') })).header.revision);
    const watch = client.watch();
    const range = { key: b('/w/'), range_end: b('/w0') };
    const w = (await watch.create({ ...range, start_revision: String(start + 1n) })).watch_id;
    const acked: AckedWrites = new Map();
    const ackedRevisions: bigint[] = [];
    let failed = 0;
    let stop = false;
    const writer = async (prefix: string) => {
      for (let i = 0; !stop && i < 2000; i++) {
        const key = `${prefix}k${i}`;
        try {
          const res = await client.put({ key: b(key), value: b(`v${i}`) });
          acked.set(key, { value: `v${i}`, revision: BigInt(res.header.revision) });
          ackedRevisions.push(BigInt(res.header.revision));
        } catch (err) {
          assert.equal((err as { code?: number }).code, Status.UNAVAILABLE, `a write during the outage fails with Unavailable: ${String(err)}`);
          assert.ok(!prefix.startsWith('/w/p/'), `a key of the top layer failed: ${String(err)}`);
          failed++;
        }
      }
    };
    const writers = Promise.all(['/w/c/', '/w/g/', '/w/p/'].map((p) => writer(p)));
    await waitUntil('writes before the crash', () => (acked.size >= 30 ? true : undefined), { timeoutMs: 30_000 });
    await child.kill9();
    await waitUntil('writes to the lower layers failing', () => (failed >= 2 ? true : undefined), { timeoutMs: 30_000 });
    await child.restart();
    const lower = () => [...acked.keys()].filter((k) => !k.startsWith('/w/p/')).length;
    const before = lower();
    await waitUntil('the lower layers used again without restarting the parent', () => (lower() >= before + 20 ? true : undefined), { timeoutMs: 30_000 });
    stop = true;
    await writers;
    assert.equal(new Set(ackedRevisions).size, ackedRevisions.length, 'no revision acknowledged twice');
    await assertAckedWritesKept(client, range, acked, { stream: watch, id: w, timeoutMs: 30_000 });
    watch.close();
    // each acknowledged write is in its layer's database at the revision its client saw
    const stored = new Map<string, number>();
    for (const s of stores.slice(0, 3)) for (const row of rowsIn(s.endpoint)) if (!row.deleted) stored.set(`${row.name}@${row.rev}`, row.rev);
    for (const [key, a] of acked) assert.ok(stored.has(`${key}@${a.revision}`), `${key} is stored at revision ${a.revision}`);
  });
});

describe('a middleware that cannot become a child', { skip }, () => {
  it('is refused with the reason: its own data, or data an older parent wrote through the etcd API', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'hk-layer-refused-'));
    const [own, top] = await Promise.all([createScratchStore('sqlite'), createScratchStore('sqlite')]);
    const lower = await Middleware.start({ endpoint: own.endpoint, compactInterval: '0' });
    const direct = new EtcdClient(lower.address);
    try {
      const topology = await topologyFile(dir, 'top', [{ name: 'lower', endpoint: `http://${lower.address}`, regexp: { key: '^/l/' } }]);
      const start = () => Middleware.start({ endpoint: top.endpoint, compactInterval: '0', extraArgs: ['--topology-config', topology] });
      await direct.put({ key: b('/l/own'), value: b('x') });
      await assert.rejects(start(), /already holds data written outside this middleware/);
      // what an older parent left: enveloped values and its revision map, in the lower layer's own revisions
      await direct.put({ key: b('harikube/revision/00000000000000000002'), value: b('') });
      await assert.rejects(start(), /older HariKube parent wrote through the etcd API[^]*start the child on empty databases/);
      assert.equal((await direct.put({ key: b('/l/still-mine'), value: b('y') })).header.revision !== undefined, true, 'the refused middleware was not claimed');
    } finally {
      direct.close();
      await lower.stop();
      await Promise.all([own.dispose(), top.dispose()]);
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/**
 * The etcd backend against a real etcd, below the middleware: a batch's global revisions committed in one
 * etcd transaction (a group: they share one etcd revision). Every read at every global revision inside and
 * around the group (range with and without limit, keysOnly, count, single keys) and watch catch-up from
 * every revision must answer exactly the state an independent model of the same writes gives, before and
 * after a compaction at a revision inside the group.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ChangeRow, KeyRow } from '../../middleware/src/backends/backend.js';
import { skipUnless } from '../support/env.js';
import { etcdBackendForSuite } from '../support/etcd-backend-rig.js';
import { etcdctl, etcdctlJson, etcdctlOk } from '../support/etcdctl.js';

const skip = await skipUnless('etcd');

const b = (s: string) => Buffer.from(s);

/** One write of the test: a put (value) or a delete (value undefined) of `key` at global `rev`. */
type Write = { rev: number; key: string; value?: string };

/** The model: per key its live version and its tombstone, as every backend's rows are; the changes in order. */
class Model {
  readonly live = new Map<string, KeyRow>();
  readonly changes: ChangeRow[] = [];
  /** The live state after each global revision written (a snapshot per revision). */
  readonly states = new Map<number, Map<string, KeyRow>>();

  /** Rows of one batch (subs numbered per revision), applied to the model. */
  apply(writes: Write[]): KeyRow[] {
    const rows: KeyRow[] = [];
    const subs = new Map<number, number>();
    for (const w of writes) {
      const sub = subs.get(w.rev) ?? 0;
      subs.set(w.rev, sub + 1);
      const prev = this.live.get(w.key);
      let row: KeyRow;
      if (w.value === undefined) {
        assert.ok(prev, `the test deletes ${w.key} only while it exists`);
        row = { ...prev, value: b(''), modRevision: w.rev, sub, prevRevision: prev.modRevision, version: 0, deleted: true };
        this.live.delete(w.key);
      } else {
        row = { key: b(w.key), value: b(w.value), modRevision: w.rev, sub, createRevision: prev?.createRevision ?? w.rev, prevRevision: prev?.modRevision ?? 0, version: (prev?.version ?? 0) + 1, lease: '0', deleted: false };
        this.live.set(w.key, row);
      }
      rows.push(row);
      this.changes.push({ ...row, prev });
      this.states.set(w.rev, new Map(this.live));
    }
    return rows;
  }

  /** Per key its newest row at global `rev`, a tombstone too (what a read across a migration sees). */
  newestAt(rev: number): KeyRow[] {
    const byKey = new Map<string, KeyRow>();
    for (const c of this.changes) if (c.modRevision <= rev) byKey.set(c.key.toString(), c);
    return [...byKey.values()].sort((x, y) => Buffer.compare(x.key, y.key));
  }

  /** The live state at global `rev`. */
  at(rev: number): KeyRow[] {
    let best = 0;
    for (const r of this.states.keys()) if (r <= rev && r > best) best = r;
    return [...(this.states.get(best)?.values() ?? [])].sort((x, y) => Buffer.compare(x.key, y.key));
  }
}

const view = (r: KeyRow) => `${r.key.toString()}=${r.value.toString()} mod=${r.modRevision} create=${r.createRevision} v=${r.version}`;
const change = (c: ChangeRow) => `${c.modRevision}.${c.sub} ${c.deleted ? 'DEL' : 'PUT'} ${c.key.toString()}=${c.value.toString()} prev=${c.prev ? `${c.prev.value.toString()}@${c.prev.modRevision}` : '-'}`;

describe('global revisions grouped in one etcd transaction, read at every revision', { skip }, () => {
  const rig = etcdBackendForSuite();
  const model = new Model();
  const keys = ['k/a', 'k/b', 'k/c', 'k/d', 'k/e', 'k/f', 'k/g', 'k/h', 'k/x'];

  const commit = async (writes: Write[]) => {
    const tx = await rig.backend.begin();
    await tx.insert(model.apply(writes));
    await tx.commit();
  };


  /**
   * Every read at every revision in [lo, hi] against the model (`compacted`: the revision compacted at). The
   * reads of one revision are independent: they are sent together (etcd round trips dominate the time) and
   * checked in order.
   */
  async function checkReads(lo: number, hi: number, compacted = 0): Promise<void> {
    for (let rev = lo; rev <= hi; rev++) {
      const want = model.at(rev);
      const checks: Promise<() => void>[] = [];
      const read = <T>(io: Promise<T>, check: (got: T) => void) => checks.push(io.then((got) => () => check(got)));
      // the reads of an online migration (etcd-moves.ts), tombstones included
      // (a tombstone below a compacted revision may show or not: no read needs it)
      const tombView = (rows: KeyRow[]) => rows.filter((r) => !r.deleted || r.modRevision >= compacted).map((r) => `${view(r)}${r.deleted ? ' deleted' : ''}`);
      read(rig.backend.moves.rangeWithTombstones({ start: b('k/'), end: b('k0'), revision: rev, limit: 0 }), (got) =>
        assert.deepEqual(tombView(got), tombView(model.newestAt(rev)), `range with tombstones at ${rev}`),
      );
      read(rig.backend.range({ start: b('k/'), end: b('k0'), revision: rev, limit: 0 }), (got) => assert.deepEqual(got.map(view), want.map(view), `range at ${rev}`));
      read(rig.backend.range({ start: Buffer.alloc(1), end: b(''), revision: rev, limit: 0 }), (got) =>
        assert.deepEqual(got.map(view), want.map(view), `range over the whole keyspace at ${rev}`),
      );
      for (let limit = 1; limit <= want.length + 1; limit++) {
        read(rig.backend.range({ start: b('k/'), end: b('k0'), revision: rev, limit }), (got) =>
          assert.deepEqual(got.map(view), want.slice(0, limit).map(view), `range at ${rev} limit ${limit}`),
        );
      }
      read(rig.backend.range({ start: b('k/'), end: b('k0'), revision: rev, limit: 3, keysOnly: true }), (got) =>
        assert.deepEqual(got.map((r) => [r.key.toString(), r.value.length, r.modRevision]), want.slice(0, 3).map((r) => [r.key.toString(), 0, r.modRevision]), `keysOnly at ${rev}`),
      );
      for (const [start, end] of [['k/', 'k0'], ['k/b', 'k/f'], ['k/d', ''], ['k/c', 'k/d']]) {
        const n = want.filter((r) => r.key.toString() >= start! && (end === '' || r.key.toString() < end!)).length;
        read(rig.backend.count(b(start!), b(end!), rev), (got) => assert.equal(got, n, `count [${start}, ${end || 'end'}) at ${rev}`));
      }
      for (const key of [...keys, 'k/never']) {
        const mine = want.filter((r) => r.key.toString() === key);
        read(rig.backend.range({ start: b(key), revision: rev, limit: 0 }), (got) => assert.deepEqual(got.map(view), mine.map(view), `get ${key} at ${rev}`));
        read(rig.backend.count(b(key), undefined, rev), (got) => assert.equal(got, mine.length, `count ${key} at ${rev}`));
      }
      for (const check of await Promise.all(checks)) check();
    }
  }

  /** Watch catch-up from every revision in [lo, hi] to `to`, all of it and cut at a few limits, against the model (sent together, checked in order). */
  async function checkChanges(lo: number, hi: number, to: number): Promise<void> {
    for (let from = lo; from <= hi; from++) {
      const checks: Promise<() => void>[] = [];
      for (const upTo of [to, from + 1, from + 3]) {
        const want = model.changes.filter((c) => c.modRevision >= from && c.modRevision <= upTo);
        for (const limit of [0, 1, 2, 5]) {
          const expected = (limit === 0 ? want : want.slice(0, limit)).map(change);
          checks.push(rig.backend.changes(from, upTo, limit).then((got) => () => assert.deepEqual(got.map(change), expected, `changes ${from}-${upTo}${limit ? ` limit ${limit}` : ''}`)));
        }
      }
      for (const check of await Promise.all(checks)) check();
    }
  }

  it('reads every global revision inside and around a group exactly, and reports its changes in order', async () => {
    // before: keys written one commit per revision (groups of one), as data of the old layout reads too
    await commit([{ rev: 1, key: 'k/a', value: 'a1' }]);
    await commit([{ rev: 2, key: 'k/b', value: 'b2' }, { rev: 2, key: 'k/c', value: 'c2' }]);
    await commit([{ rev: 3, key: 'k/d', value: 'd3' }]);
    await commit([{ rev: 4, key: 'k/e', value: 'e4' }]);
    await commit([{ rev: 5, key: 'k/x', value: 'x5' }]);
    // the group: a batch of several global revisions with gaps (other databases' revisions), creates,
    // overwrites and deletes of keys that existed before, one revision writing two keys
    await commit([
      { rev: 10, key: 'k/a', value: 'a10' },
      { rev: 11, key: 'k/f', value: 'f11' },
      { rev: 13, key: 'k/b' },
      { rev: 14, key: 'k/g', value: 'g14' },
      { rev: 14, key: 'k/c', value: 'c14' },
      { rev: 16, key: 'k/d' },
      { rev: 17, key: 'k/h', value: 'h17' },
    ]);
    // after: a second batch, grouped too, then one revision alone
    await commit([
      { rev: 19, key: 'k/e', value: 'e19' },
      { rev: 20, key: 'k/x' },
    ]);
    await commit([{ rev: 22, key: 'k/a', value: 'a22' }]);

    // in the etcd: the group's map entries share one etcd revision, above the one of revision 5
    const map = await etcdctlJson<{ kvs: { key: string; mod_revision: number }[] }>(rig.etcd.address, ['get', '--prefix', 'harikube/revision/']);
    const entries = new Map(map.kvs.map((kv) => [Number(Buffer.from(kv.key, 'base64').toString().slice('harikube/revision/'.length)), kv.mod_revision]));
    assert.deepEqual([...entries.keys()], [1, 2, 3, 4, 5, 10, 11, 13, 14, 16, 17, 19, 20, 22]);
    const group = [10, 11, 13, 14, 16, 17].map((g) => entries.get(g));
    assert.equal(new Set(group).size, 1, `one etcd revision for the whole batch: ${group.join(', ')}`);
    assert.equal(group[0], entries.get(5)! + 1, 'the batch is the next etcd revision');
    assert.equal(entries.get(19), entries.get(20), 'the second batch shares one too');
    // the tombstones of the deletes say their own global revision
    const tomb = await etcdctlJson<{ kvs: { value: string; mod_revision: number }[] }>(rig.etcd.address, ['get', `harikube/deleted/${b('k/b').toString('hex')}`]);
    assert.match(Buffer.from(tomb.kvs[0]!.value, 'base64').toString(), /^harikube\/v1 mod=13 create=2 prev=2 version=0 lease=0 sub=0 deleted\n$/);
    assert.equal(tomb.kvs[0]!.mod_revision, group[0]);

    await checkReads(0, 23);
    await checkChanges(1, 23, 23);
    // a migration out of the etcd reads each key's whole history, walking back through the etcd's revisions
    const history = await rig.backend.moves.history(b('k/'), b('k0'), 1000);
    const rowView = (r: KeyRow) => `${r.key.toString()}@${r.modRevision}${r.deleted ? ' deleted' : `=${r.value.toString()}`}`;
    const byKey = (rows: KeyRow[]) => [...rows].sort((x, y) => Buffer.compare(x.key, y.key) || x.modRevision - y.modRevision).map(rowView);
    assert.deepEqual(byKey(history), byKey(model.changes));
  });

  it('splits a batch that writes a key twice, each part one etcd transaction, and reads inside both parts', async () => {
    await commit([
      { rev: 30, key: 'k/x', value: 'x30' },
      { rev: 31, key: 'k/f', value: 'f31' },
      { rev: 32, key: 'k/x', value: 'x32' },
      { rev: 33, key: 'k/g' },
      { rev: 34, key: 'k/x' },
      { rev: 35, key: 'k/b', value: 'b35' },
    ]);
    const map = await etcdctlJson<{ kvs: { key: string; mod_revision: number }[] }>(rig.etcd.address, ['get', '--prefix', 'harikube/revision/']);
    const at = new Map(map.kvs.map((kv) => [Number(Buffer.from(kv.key, 'base64').toString().slice('harikube/revision/'.length)), kv.mod_revision]));
    const parts = [30, 31, 32, 33, 34, 35].map((g) => at.get(g)!);
    assert.deepEqual(parts.map((e) => e - parts[0]!), [0, 0, 1, 1, 2, 2], 'a new etcd transaction where the key comes again');
    await checkReads(29, 36);
    await checkChanges(20, 36, 36);
  });

  it('splits a batch larger than etcd takes in one request, and reverts only whole commits', async () => {
    // 5 x 400 KB: one transaction would exceed etcd's 1.5 MiB request limit
    const big = 'v'.repeat(400 * 1024);
    await commit([40, 41, 42, 43, 44].map((rev) => ({ rev, key: `k/big${rev}`, value: `${rev}${big}` })));
    const map = await etcdctlJson<{ kvs: { key: string; mod_revision: number }[] }>(rig.etcd.address, ['get', '--prefix', 'harikube/revision/']);
    const at = new Map(map.kvs.map((kv) => [Number(Buffer.from(kv.key, 'base64').toString().slice('harikube/revision/'.length)), kv.mod_revision]));
    const parts = [40, 41, 42, 43, 44].map((g) => at.get(g)!);
    assert.deepEqual(parts.map((e) => e - parts[0]!), [0, 0, 1, 1, 2], 'two revisions of 400 KB per etcd transaction');
    assert.deepEqual((await rig.backend.range({ start: b('k/big'), end: b('k/big99'), revision: 42, limit: 0, keysOnly: true })).map((r) => r.key.toString()), ['k/big40', 'k/big41', 'k/big42']);
    await assert.rejects(rig.backend.revert(41, 44), /global revision 40 was committed in the same etcd transaction as one of them; a revert must take back whole commits/);
    await assert.rejects(rig.backend.revert(40, 40), /global revision 41 was committed in the same etcd transaction/);
    await rig.backend.revert(40, 44);
    assert.deepEqual(await rig.backend.range({ start: b('k/big'), end: b('k/big99'), revision: 44, limit: 0 }), []);
    for (const r of model.changes.filter((c) => c.modRevision >= 40)) model.changes.splice(model.changes.indexOf(r), 1);
    for (const rev of [40, 41, 42, 43, 44]) model.states.delete(rev);
    for (const key of ['k/big40', 'k/big41', 'k/big42', 'k/big43', 'k/big44']) model.live.delete(key);
    await checkReads(35, 45);
  });

  it('compacts at a revision inside a group and still reads there and above exactly', async () => {
    // 15: no revision of its own, inside the group (16 and 17 follow it in the same etcd revision)
    await rig.backend.compact(15);
    await checkReads(15, 36, 15);
    await checkChanges(15, 36, 36);
    // a migration out of the etcd reads each key's history from its row at the oldest readable revision on
    // (14, the last one at or below 15): 16 deleted k/d in the group, its version before is one etcd revision earlier
    const history = await rig.backend.moves.history(b('k/'), b('k0'), 1000);
    const wanted = model.changes.filter((c) => c.modRevision > 14 || c === model.newestAt(14).find((r) => r.key.equals(c.key)));
    const rowView = (r: KeyRow) => `${r.key.toString()}@${r.modRevision}${r.deleted ? ' deleted' : `=${r.value.toString()}`}`;
    const byKey = (rows: KeyRow[]) => [...rows].sort((x, y) => Buffer.compare(x.key, y.key) || x.modRevision - y.modRevision).map(rowView);
    assert.deepEqual(byKey(history), byKey(wanted));
    // the etcd keeps the revision before the group (the state below 16 and 17 there), no older one
    const entry = await etcdctlJson<{ kvs: { mod_revision: number }[] }>(rig.etcd.address, ['get', `harikube/revision/${'16'.padStart(20, '0')}`]);
    const group = entry.kvs[0]!.mod_revision;
    await etcdctlOk(rig.etcd.address, ['get', 'k/a', '--rev', String(group - 1)]);
    assert.match((await etcdctl(rig.etcd.address, ['get', 'k/a', '--rev', String(group - 2)])).stderr, /compacted/);
  });
});

/**
 * The etcd backend's write transaction against a real etcd, below the middleware: a batch whose global
 * revisions go out grouped in etcd transactions, one of them too large for one etcd transaction (alone in
 * its own, its map entry naming its first part's etcd revision); reads at every global revision; keys read
 * ahead in one round trip; a revert that moves the commit head.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KeyRow } from '../../middleware/src/backends/backend.js';
import { skipUnless } from '../support/env.js';
import { etcdBackendForSuite } from '../support/etcd-backend-rig.js';
import { etcdctl } from '../support/etcdctl.js';

const skip = await skipUnless('etcd');

const b = (s: string) => Buffer.from(s);

function row(key: string, value: string, rev: number, prev?: KeyRow): KeyRow {
  return { key: b(key), value: b(value), modRevision: rev, sub: 0, createRevision: prev?.createRevision ?? rev, prevRevision: prev?.modRevision ?? 0, version: (prev?.version ?? 0) + 1, lease: '0', deleted: false };
}

const tombstone = (prev: KeyRow, rev: number): KeyRow => ({ ...prev, value: b(''), modRevision: rev, prevRevision: prev.modRevision, version: 0, deleted: true });

const view = (rows: KeyRow[]) => rows.map((r) => `${r.key.toString()}=${r.value.toString()}@${r.modRevision}`);

describe('the etcd backend write transaction on a real etcd', { skip }, () => {
  const rig = etcdBackendForSuite();


  it('commits a batch of revisions, one too large for one etcd transaction, and reads every revision exactly', async () => {
    const a1 = row('a', 'a1', 1);
    let tx = await rig.backend.begin();
    await tx.insert([a1]);
    await tx.commit();

    // revisions 2..6: a create, a large revision of 300 keys (three etcd transactions), an update, a delete, a create
    const big = Array.from({ length: 300 }, (_, i) => row(`big/${String(i).padStart(3, '0')}`, `v${i}`, 3));
    const a4 = row('a', 'a4', 4, a1);
    const rows = [row('b', 'b2', 2), ...big, a4, tombstone(row('b', 'b2', 2), 5), row('c', 'c6', 6)];
    tx = await rig.backend.begin();
    await tx.insert(rows);
    await tx.commit();
    assert.equal(await rig.backend.maxRevision(), 6);

    const at = async (rev: number) => view(await rig.backend.range({ start: b('a'), end: b('d'), revision: rev, limit: 0 }));
    assert.deepEqual(await at(1), ['a=a1@1']);
    assert.deepEqual(await at(2), ['a=a1@1', 'b=b2@2']);
    const bigView = view(big);
    assert.deepEqual(await at(3), ['a=a1@1', 'b=b2@2', ...bigView]);
    assert.deepEqual(await at(4), ['a=a4@4', 'b=b2@2', ...bigView]);
    assert.deepEqual(await at(5), ['a=a4@4', ...bigView]);
    assert.deepEqual(await at(6), ['a=a4@4', ...bigView, 'c=c6@6']);
    assert.equal(await rig.backend.count(b('big/'), b('big0'), 2), 0, 'none of the large revision shows before it');

    // the map: revision 3 spans its three etcd transactions; the value names the first, mod_revision the last
    const entry = JSON.parse((await etcdctl(rig.etcd.address, ['get', `harikube/revision/${'3'.padStart(20, '0')}`, '-w', 'json'])).stdout) as { kvs: { mod_revision: number; value: string }[] };
    const first = Number(Buffer.from(entry.kvs[0]!.value, 'base64').toString());
    assert.equal(entry.kvs[0]!.mod_revision - first, 2, 'three etcd transactions, consecutive');
    // watch catch-up: every change once, in order, the large revision's rows with subs 0..299
    const changes = await rig.backend.changes(2, 6, 0);
    assert.deepEqual(
      changes.map((c) => `${c.key.toString()}@${c.modRevision}`),
      ['b@2', ...big.map((r) => `${r.key.toString()}@3`), 'a@4', 'b@5', 'c@6'],
    );
    const head = await etcdctl(rig.etcd.address, ['get', 'harikube/head', '--print-value-only']);
    assert.equal(head.stdout.trim(), '6', 'the commit head names the last global revision written');
  });

  it('reads the keys of a batch ahead in one round trip, and its own writes over them', async () => {
    const tx = await rig.backend.begin();
    assert.ok(rig.backend.readsAhead && tx.prefetch, 'the write transaction reads ahead');
    try {
      const keys = [b('a'), b('b'), b('big/007'), b('missing'), b('a')];
      await tx.prefetch!(keys);
      for (const k of keys) assert.deepEqual(await tx.latest(k), await rig.backend.latest(k), `latest ${k.toString()}`);
      assert.equal((await tx.latest(b('a')))!.value.toString(), 'a4');
      assert.deepEqual([(await tx.latest(b('b')))?.deleted, (await tx.latest(b('b')))?.modRevision], [true, 5], 'a deleted key reads as its tombstone (WriteTxn.latest)');
      await tx.insert([row('a', 'a7', 7, await tx.latest(b('a')))]);
      assert.equal((await tx.latest(b('a')))!.value.toString(), 'a7', 'its own write wins over what was read ahead');
    } finally {
      await tx.rollback();
    }
  });

  it('reverts a batch and moves the commit head, so nothing of the batch still in flight could apply after it', async () => {
    const a = (await rig.backend.latest(b('a')))!;
    const tx = await rig.backend.begin();
    await tx.insert([row('a', 'a7', 7, a), row('d', 'd8', 8)]);
    await tx.commit();
    await rig.backend.revert(7, 8);
    assert.deepEqual(view(await rig.backend.range({ start: b('a'), end: b('e'), revision: 8, limit: 0 })).filter((v) => !v.startsWith('big/')), ['a=a4@4', 'c=c6@6']);
    assert.equal(await rig.backend.maxRevision(), 6);
    const head = await etcdctl(rig.etcd.address, ['get', 'harikube/head', '--print-value-only']);
    assert.match(head.stdout.trim(), /^revert 7-8 at \d+\.0$/);
    // the next batch follows the reverted head
    const next = await rig.backend.begin();
    await next.insert([row('e', 'e9', 9)]);
    await next.commit();
    assert.deepEqual(view(await rig.backend.range({ start: b('e'), revision: 9, limit: 0 })), ['e=e9@9']);
  });

  it("answers latest() with a key's tombstone when its delete is its newest row, as every backend does", async () => {
    // while keys move into this etcd, a delete here must beat an older live row still in the source
    const base = await rig.backend.maxRevision();
    const t1 = row('t', 't1', base + 1);
    let tx = await rig.backend.begin();
    await tx.insert([t1, tombstone(t1, base + 2)]);
    await tx.commit();
    tx = await rig.backend.begin();
    const gone = await tx.latest(b('t'));
    assert.deepEqual([gone?.deleted, gone?.modRevision, gone?.version], [true, base + 2, 0]);
    await tx.prefetch!([b('t'), b('never')]);
    assert.deepEqual([(await tx.latest(b('t')))?.deleted, await tx.latest(b('never'))], [true, undefined]);
    // written again: the live version is the newest
    await tx.insert([row('t', 't3', base + 3)]);
    await tx.commit();
    const again = await rig.backend.latestMany([b('t')]);
    assert.deepEqual([again[0]?.deleted, again[0]?.value.toString()], [false, 't3']);
  });
});

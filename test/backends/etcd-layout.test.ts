/** The etcd backend's stored format and its map between global and etcd revisions (no etcd needed). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { copiedKey, copiedSpan, decodeStored, decodeValue, deletedKey, encodeValue, globalOfRevisionKey, isInternal, keyOfDeleted, parseCopiedKey, revisionKey } from '../../middleware/src/backends/etcd/layout.js';
import { RevisionMap } from '../../middleware/src/backends/etcd/revision-map.js';

test('a value round-trips through the envelope, which etcdctl shows as one text line before the value', () => {
  const value = Buffer.from([0, 10, 255, 10]);
  const row = { key: Buffer.from('/registry/pods/a'), value, modRevision: 42, sub: 0, createRevision: 7, prevRevision: 41, version: 3, lease: '9223372036854775807', deleted: false };
  const stored = encodeValue(row);
  assert.equal(stored.subarray(0, stored.indexOf(10)).toString(), 'harikube/v1 mod=42 create=7 prev=41 version=3 lease=9223372036854775807 sub=0');
  assert.deepEqual(decodeValue(row.key, stored, 'etcd'), row);
  assert.deepEqual(decodeValue(row.key, stored, 'etcd', true).value, Buffer.alloc(0));
  // a tombstone (kept beside a deleted key) and a value written before the envelope kept `sub`
  const tomb = { ...row, value: Buffer.alloc(0), sub: 3, version: 0, deleted: true };
  assert.equal(encodeValue(tomb).toString(), 'harikube/v1 mod=42 create=7 prev=41 version=0 lease=9223372036854775807 sub=3 deleted\n');
  assert.deepEqual(decodeValue(row.key, encodeValue(tomb), 'etcd'), tomb);
  const old = decodeStored(row.key, Buffer.from('harikube/v1 mod=5 create=5 prev=0 version=1 lease=0\nv'), 'etcd');
  assert.deepEqual([old.subKnown, old.row.sub, old.row.value.toString()], [false, 0, 'v']);
});

test('side keys of a key range sort as the keys do, so a key range is one etcd range of them', () => {
  const keys = ['/a', '/a/b', '/a0', '/b', '/b\u00ff'].map((k) => Buffer.from(k, 'latin1'));
  const copied = keys.flatMap((k) => [copiedKey(k, 9), copiedKey(k, 10)]);
  assert.deepEqual([...copied].sort(Buffer.compare), copied);
  assert.deepEqual(copied.map((k) => parseCopiedKey(k).key.toString('latin1')), keys.flatMap((k) => [k.toString('latin1'), k.toString('latin1')]));
  assert.deepEqual(copied.map((k) => parseCopiedKey(k).global), keys.flatMap(() => [9, 10]));
  // [/a/b, /b): exactly the entries of /a/b and /a0
  const span = copiedSpan(Buffer.from('/a/b'), Buffer.from('/b'));
  const inside = copied.filter((k) => Buffer.compare(k, span.key) >= 0 && Buffer.compare(k, span.range_end!) < 0).map((k) => parseCopiedKey(k).key.toString());
  assert.deepEqual(inside, ['/a/b', '/a/b', '/a0', '/a0']);
  // one key: its own entries, not those of a key it is a prefix of
  const one = copiedSpan(Buffer.from('/a'), undefined);
  assert.deepEqual(copied.filter((k) => Buffer.compare(k, one.key) >= 0 && Buffer.compare(k, one.range_end!) < 0).length, 2);
  assert.ok([...copied, deletedKey(keys[0]!)].every(isInternal));
  assert.equal(keyOfDeleted(deletedKey(keys[4]!)).toString('latin1'), '/b\u00ff');
});

test('a value HariKube did not write is refused, naming the key', () => {
  assert.throws(() => decodeValue(Buffer.from('/registry/x'), Buffer.from('{"kind":"Pod"}'), 'http://e:2379'), /http:\/\/e:2379: key "\/registry\/x" holds a value HariKube did not write/);
});

test('revision keys sort numerically and are internal', () => {
  const keys = [9, 10, 123456789012].map(revisionKey);
  assert.deepEqual([...keys].sort(Buffer.compare), keys);
  assert.deepEqual(keys.map(globalOfRevisionKey), [9, 10, 123456789012]);
  assert.ok(keys.every(isInternal));
  assert.ok(!isInternal(Buffer.from('/registry/harikube/x')));
});

test('the revision map: floor reads, etcd revisions of split global revisions, removal and compaction', () => {
  const m = new RevisionMap();
  m.load([
    { global: 10, first: 3, last: 3 },
    { global: 5, first: 2, last: 2 },
    { global: 12, first: 4, last: 6 },
  ]);
  assert.equal(m.maxGlobal, 12);
  assert.equal(m.floor(4), undefined);
  assert.deepEqual([m.floor(5)?.last, m.floor(9)?.last, m.floor(11)?.last, m.floor(99)?.last], [2, 2, 3, 6]);
  assert.deepEqual([m.globalOf(2), m.globalOf(3), m.globalOf(4), m.globalOf(5), m.globalOf(6), m.globalOf(7)], [5, 10, 12, 12, 12, undefined]);
  assert.deepEqual(m.between(6, 12).map((s) => s.global), [10, 12]);
  assert.throws(() => m.add({ global: 12, first: 8, last: 8 }), /not above/);
  m.add({ global: 13, first: 9, last: 9 });
  m.remove(new Set([13]));
  assert.equal(m.maxGlobal, 12);
  assert.equal(m.dropBelow(10), 1);
  assert.deepEqual(m.between(0, 99).map((s) => s.global), [10, 12]);
});

test('the revision map: global revisions of one group share an etcd revision; reads below its top are inside it', () => {
  const m = new RevisionMap();
  // 3 alone (old layout), 5, 7 and 9 in one etcd transaction (etcd revision 4), 11 spanning 5..6, 12 and 13 at 7
  m.load([
    { global: 3, first: 2, last: 2 },
    { global: 5, first: 4, last: 4 },
    { global: 7, first: 4, last: 4 },
    { global: 9, first: 4, last: 4 },
    { global: 11, first: 5, last: 6 },
    { global: 12, first: 7, last: 7 },
    { global: 13, first: 7, last: 7 },
  ]);
  assert.deepEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13].map((g) => m.midGroup(g)), [false, false, false, true, true, true, true, false, false, false, true, false]);
  assert.deepEqual([2, 3, 4, 5, 6, 7, 8].map((e) => m.globalOf(e)), [3, undefined, 5, 11, 11, 12, undefined]);
  assert.deepEqual([m.floor(6)?.last, m.floor(10)?.last], [4, 4]);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { etcdService } from '../../middleware/src/server/proto.js';
import { WatchEvent } from '../../middleware/src/mvcc/watch-event.js';
import { encodeEvent, encodeHeader, encodeRangeResponse, encodeWatchResponse } from '../../middleware/src/server/wire.js';

// The hand-written encoder must produce exactly what etcd's proto describes: decode with the real schema.
const decode = etcdService('Watch').Watch!.responseDeserialize as (b: Buffer) => any;

test('a watch response with events decodes with the etcd proto', () => {
  const put = WatchEvent.fromRow(
    { key: Buffer.from('k'), value: Buffer.from('v2'), modRevision: 7, sub: 0, createRevision: 5, prevRevision: 5, version: 2, lease: '9223372036854775807', deleted: false },
    { key: Buffer.from('k'), value: Buffer.from('v1'), modRevision: 5, sub: 0, createRevision: 5, prevRevision: 0, version: 1, lease: '0', deleted: false },
  );
  const del = WatchEvent.fromRow(
    { key: Buffer.from('k'), value: Buffer.alloc(0), modRevision: 8, sub: 0, createRevision: 5, prevRevision: 7, version: 0, lease: '0', deleted: true },
    { key: Buffer.from('k'), value: Buffer.from('v2'), modRevision: 7, sub: 0, createRevision: 5, prevRevision: 5, version: 2, lease: '0', deleted: false },
  );
  const header = encodeHeader({ cluster_id: '18446744073709551615', member_id: '42', revision: 8, raft_term: 1 });
  const msg = decode(encodeWatchResponse({ header, watchId: '3', events: [encodeEvent(put, true), encodeEvent(del, false)] }));
  assert.equal(msg.header.cluster_id, '18446744073709551615');
  assert.equal(msg.header.revision, '8');
  assert.equal(msg.watch_id, '3');
  assert.equal(msg.events.length, 2);
  assert.equal(msg.events[0].type, 'Put');
  assert.equal(msg.events[0].kv.value.toString(), 'v2');
  assert.equal(msg.events[0].kv.lease, '9223372036854775807');
  assert.equal(msg.events[0].prev_kv.value.toString(), 'v1');
  assert.equal(msg.events[1].type, 'Delete');
  assert.equal(msg.events[1].kv.mod_revision, '8');
  assert.equal(msg.events[1].kv.version, '0');
  assert.equal(msg.events[1].prev_kv, null, 'prev_kv was not asked for');
});

test('progress responses carry watch_id -1 and compaction cancels carry compact_revision', () => {
  const header = encodeHeader({ cluster_id: '1', member_id: '2', revision: 100, raft_term: 1 });
  const progress = decode(encodeWatchResponse({ header, watchId: '-1' }));
  assert.equal(progress.watch_id, '-1');
  assert.equal(progress.events.length, 0);
  const cancel = decode(encodeWatchResponse({ header, watchId: '0', canceled: true, compactRevision: 50 }));
  assert.equal(cancel.canceled, true);
  assert.equal(cancel.compact_revision, '50');
  assert.equal(cancel.watch_id, '0');
});

test('an event is encoded once per variant and reused', () => {
  const e = WatchEvent.fromRow(
    { key: Buffer.from('a'), value: Buffer.from('b'), modRevision: 2, sub: 0, createRevision: 2, prevRevision: 0, version: 1, lease: '0', deleted: false },
    undefined,
  );
  assert.equal(encodeEvent(e, false), encodeEvent(e, false));
  assert.equal(encodeEvent(e, true), encodeEvent(e, false), 'a create has no prev_kv, so both variants are the same bytes');
});

test('a range response encodes kvs, more and count as the etcd proto decodes them', () => {
  const decodeRange = etcdService('KV').Range!.responseDeserialize as (b: Buffer) => any;
  const msg = decodeRange(
    encodeRangeResponse({
      header: { cluster_id: '7', member_id: '8', revision: 12, raft_term: 1 },
      kvs: [
        { key: Buffer.from([0, 255]), create_revision: 3, mod_revision: 11, version: 4, value: Buffer.from('x'), lease: '0' },
        { key: Buffer.from('b'), create_revision: 5, mod_revision: 5, version: 1, value: Buffer.alloc(0), lease: '9007199254740993' },
      ],
      more: true,
      count: 250,
    }),
  );
  assert.equal(msg.header.revision, '12');
  assert.deepEqual(msg.kvs[0].key, Buffer.from([0, 255]));
  assert.equal(msg.kvs[0].version, '4');
  assert.equal(msg.kvs[1].lease, '9007199254740993', 'int64 lease IDs above 2^53 stay exact');
  assert.equal(msg.kvs[1].value.length, 0);
  assert.equal(msg.more, true);
  assert.equal(msg.count, '250');
});

test('varint edges round-trip through the etcd proto: 7-bit, 31-bit, 32-bit and 53-bit boundaries, uint64 max, negative int64', () => {
  const decodeRange = etcdService('KV').Range!.responseDeserialize as (b: Buffer) => any;
  const edges = [1, 127, 128, 16383, 16384, 2 ** 21, 2 ** 28 - 1, 2 ** 28, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 35, 2 ** 49 + 3, Number.MAX_SAFE_INTEGER];
  const kvs = edges.map((n, i) => ({
    key: Buffer.alloc(n % 300, i),
    create_revision: n,
    mod_revision: n,
    version: String(n),
    value: Buffer.alloc(n % 200, 7),
    lease: i % 2 ? String(-n) : String(BigInt(n) * 1000n),
  }));
  const msg = decodeRange(
    encodeRangeResponse({ header: { cluster_id: '18446744073709551615', member_id: '9223372036854775808', revision: 2 ** 40, raft_term: 1 }, kvs, more: false, count: 2 ** 33 }),
  );
  assert.equal(msg.header.cluster_id, '18446744073709551615');
  assert.equal(msg.header.member_id, '9223372036854775808');
  assert.equal(msg.header.revision, String(2 ** 40));
  assert.equal(msg.count, String(2 ** 33));
  assert.equal(msg.more, false);
  assert.equal(msg.kvs.length, edges.length);
  edges.forEach((n, i) => {
    const kv = msg.kvs[i];
    assert.equal(kv.create_revision, String(n), `create_revision ${n}`);
    assert.equal(kv.mod_revision, String(n));
    assert.equal(kv.version, String(n));
    assert.equal(kv.key.length, n % 300);
    assert.equal(kv.value.length, n % 200);
    assert.equal(kv.lease, kvs[i]!.lease, `lease ${kvs[i]!.lease}`);
  });
});

test('a watch response with a cancel reason and many events decodes with the etcd proto', () => {
  const events = Array.from({ length: 300 }, (_, i) =>
    encodeEvent(
      WatchEvent.fromRow(
        { key: Buffer.from(`key-${i}`), value: Buffer.alloc(i * 7, 1), modRevision: 1000 + i, sub: 0, createRevision: 3, prevRevision: 0, version: i + 1, lease: '0', deleted: i % 5 === 0 },
        undefined,
      ),
      true,
    ),
  );
  const header = encodeHeader({ cluster_id: '1', member_id: '2', revision: 1299, raft_term: 1 });
  const msg = decode(encodeWatchResponse({ header, watchId: 2 ** 40, canceled: true, cancelReason: 'etcdserver: mvcc: required revision has been compacted', events }));
  assert.equal(msg.watch_id, String(2 ** 40));
  assert.equal(msg.cancel_reason, 'etcdserver: mvcc: required revision has been compacted');
  assert.equal(msg.events.length, 300);
  assert.equal(msg.events[299].kv.value.length, 299 * 7);
  assert.equal(msg.events[5].type, 'Delete');
  assert.equal(msg.events[6].kv.mod_revision, '1006');
});

/** The layer protocol's wire format (backends/middleware/layer-protocol.ts): byte strings travel raw and come back exact. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeMessage, encodeMessage } from '../../middleware/src/backends/middleware/layer-protocol.js';

test('rows round-trip with their bytes, an empty byte string stays distinct from an absent one', () => {
  const binary = Buffer.from([0, 255, 10, 0x7b, 0x22]);
  const msg = {
    rows: [{ key: binary, value: Buffer.alloc(0), modRevision: 12, sub: 1, createRevision: 3, prevRevision: 9, version: 4, lease: '7587869315785310000', deleted: false }],
    q: { start: Buffer.from('/a'), end: undefined, limit: 0 },
    meta: [{ name: 'owner_cluster_id', value: Buffer.from('123') }],
  };
  const wire = encodeMessage(msg);
  assert.ok(wire.includes(binary), 'the key travels as raw bytes, not base64');
  const back = decodeMessage<typeof msg>(wire);
  assert.ok(Buffer.isBuffer(back.rows[0]!.key) && back.rows[0]!.key.equals(binary));
  assert.ok(Buffer.isBuffer(back.rows[0]!.value) && back.rows[0]!.value.length === 0);
  assert.equal('end' in back.q, false);
  assert.deepEqual({ ...back.rows[0], key: undefined, value: undefined }, { ...msg.rows[0], key: undefined, value: undefined });
  assert.equal(back.meta[0]!.value.toString(), '123');
});

test('a truncated or malformed message is refused, saying what is wrong', () => {
  const wire = encodeMessage({ key: Buffer.from('abc') });
  assert.throws(() => decodeMessage(wire.subarray(0, 2)), /shorter than its header/);
  assert.throws(() => decodeMessage(wire.subarray(0, wire.length - 1)), /truncated byte string/);
  const json = Buffer.from('{"key":{"$b":3}}');
  const head = Buffer.alloc(4);
  head.writeUInt32BE(json.length);
  assert.throws(() => decodeMessage(Buffer.concat([head, json])), /missing byte string/);
});

test('the wire format is exactly u32 length | JSON with {"$b": i} references | (u32 length | bytes)* (what older layers speak)', () => {
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const json = '{"rows":[{"key":{"$b":0},"n":1},null],"meta":{"value":{"$b":1}},"s":"x"}';
  const expected = Buffer.concat([u32(json.length), Buffer.from(json), u32(2), Buffer.from('ab'), u32(0)]);
  const msg = { rows: [{ key: Buffer.from('ab'), n: 1 }, null], meta: { value: Buffer.alloc(0) }, s: 'x' };
  assert.deepEqual(encodeMessage(msg), expected);
  const back = decodeMessage<typeof msg>(expected);
  assert.equal(back.rows[1], null);
  assert.ok(Buffer.isBuffer(back.rows[0]!.key) && back.rows[0]!.key.toString() === 'ab');
  assert.ok(Buffer.isBuffer(back.meta.value) && back.meta.value.length === 0);
});

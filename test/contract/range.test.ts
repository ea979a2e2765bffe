/**
 * Range: bytewise key order, count/more with limit, sort options, revision filters, keys_only, count_only,
 * serializable, reads at older revisions, and the "\0" range ends.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { ZERO_BYTE, b, prefixEnd, rev, text, underPrefix } from '../support/bytes.js';
import { contractSuite } from '../support/contract.js';
import type { KeyValue } from '../support/etcd-types.js';

const keysOf = (kvs: KeyValue[], prefix = '') => kvs.map((kv) => text(kv.key).slice(prefix.length));

await contractSuite('range', (t) => {
  it('orders keys bytewise, not by JS string order', async () => {
    const p = t.prefix('range-bytes');
    // UTF-16 order would put the emoji (surrogate 0xD83D) before U+FFFD; UTF-8 bytes put it after.
    const suffixes = ['Z', 'a', '\u00e9', '\uFFFD', '\u{1F600}', 'a\u0000', 'ab'];
    for (const s of suffixes) await t.client.put({ key: b(p + s), value: b(s) });
    const res = await t.client.range(underPrefix(p));
    const expected = suffixes.map((s) => b(p + s)).sort(Buffer.compare);
    assert.deepEqual(res.kvs.map((kv) => kv.key), expected);
    // A non-UTF-8 key round-trips as raw bytes.
    const raw = Buffer.concat([b(p), Buffer.from([0xff, 0x00, 0x80])]);
    await t.client.put({ key: raw, value: Buffer.from([0x00, 0xfe]) });
    const got = await t.client.range({ key: raw });
    assert.deepEqual([got.kvs[0]!.key, got.kvs[0]!.value], [raw, Buffer.from([0x00, 0xfe])]);
  });

  it('a missing key is count 0, not an error', async () => {
    const res = await t.client.range({ key: b(`${t.prefix('range-missing')}nothing`) });
    assert.deepEqual({ kvs: res.kvs, count: res.count, more: res.more }, { kvs: [], count: '0', more: false });
    const none = await t.client.range(underPrefix(t.prefix('range-missing-prefix')));
    assert.equal(none.count, '0');
  });

  it('count is every key in range, more says whether the limit cut any off', async () => {
    const p = t.prefix('range-limit');
    for (const k of ['a', 'b', 'c', 'd', 'e']) await t.client.put({ key: b(p + k), value: b(k) });
    const page = await t.client.range({ ...underPrefix(p), limit: 2 });
    assert.deepEqual([keysOf(page.kvs, p), page.count, page.more], [['a', 'b'], '5', true]);
    const exact = await t.client.range({ ...underPrefix(p), limit: 5 });
    assert.deepEqual([exact.kvs.length, exact.count, exact.more], [5, '5', false]);
    const unlimited = await t.client.range({ ...underPrefix(p), limit: 0 });
    assert.deepEqual([unlimited.kvs.length, unlimited.more], [5, false]);
    const tail = await t.client.range({ key: b(`${p}c`), range_end: prefixEnd(p), limit: 1 });
    assert.deepEqual([keysOf(tail.kvs, p), tail.count, tail.more], [['c'], '3', true]);
  });

  it('count_only returns the count and no kvs; keys_only returns kvs without values', async () => {
    const p = t.prefix('range-only');
    for (const k of ['a', 'b', 'c']) await t.client.put({ key: b(p + k), value: b(`value-${k}`) });
    const counted = await t.client.range({ ...underPrefix(p), count_only: true });
    assert.deepEqual([counted.kvs, counted.count, counted.more], [[], '3', false]);
    const keys = await t.client.range({ ...underPrefix(p), keys_only: true, limit: 2 });
    assert.deepEqual(keysOf(keys.kvs, p), ['a', 'b']);
    assert.deepEqual([keys.count, keys.more], ['3', true]);
    for (const kv of keys.kvs) {
      assert.equal(kv.value.length, 0, 'keys_only must drop the value');
      assert.equal(kv.version, '1', 'keys_only keeps the metadata');
      assert.notEqual(kv.mod_revision, '0');
    }
  });

  /** Five keys whose version, create, mod revision and value orders all differ from key order. */
  async function sortFixture(p: string): Promise<void> {
    const put = (k: string, v: string) => t.client.put({ key: b(p + k), value: b(v) });
    await put('c', '5'); // c: create 1st
    await put('a', '3'); // a: create 2nd
    await put('e', '1');
    await put('b', '4');
    await put('d', '2');
    await put('a', '9'); // a: version 2
    await put('a', '3'); // a: version 3, value 3
    await put('e', '1'); // e: version 2
    await put('c', '5'); // c: version 2 (versions: a 3, c 2, e 2, b 1, d 1)
  }

  it('sorts by every target in both orders; a non-key target with order None sorts ascending', async () => {
    const p = t.prefix('range-sort');
    await sortFixture(p);
    const sorted = async (sort_target: 'Key' | 'Create' | 'Mod' | 'Value', sort_order: 'None' | 'Ascend' | 'Descend') =>
      keysOf((await t.client.range({ ...underPrefix(p), sort_target, sort_order })).kvs, p);
    assert.deepEqual(await sorted('Key', 'None'), ['a', 'b', 'c', 'd', 'e']);
    assert.deepEqual(await sorted('Key', 'Ascend'), ['a', 'b', 'c', 'd', 'e']);
    assert.deepEqual(await sorted('Key', 'Descend'), ['e', 'd', 'c', 'b', 'a']);
    assert.deepEqual(await sorted('Create', 'Ascend'), ['c', 'a', 'e', 'b', 'd']);
    assert.deepEqual(await sorted('Create', 'None'), ['c', 'a', 'e', 'b', 'd']);
    assert.deepEqual(await sorted('Create', 'Descend'), ['d', 'b', 'e', 'a', 'c']);
    assert.deepEqual(await sorted('Mod', 'Ascend'), ['b', 'd', 'a', 'e', 'c']);
    assert.deepEqual(await sorted('Mod', 'Descend'), ['c', 'e', 'a', 'd', 'b']);
    assert.deepEqual(await sorted('Value', 'Ascend'), ['e', 'd', 'a', 'b', 'c']);
    assert.deepEqual(await sorted('Value', 'Descend'), ['c', 'b', 'a', 'd', 'e']);
    // Version has ties (c and e at 2, b and d at 1): check the grouping, not the order within a tie.
    const byVersion = (await t.client.range({ ...underPrefix(p), sort_target: 'Version', sort_order: 'Descend' })).kvs;
    assert.deepEqual(byVersion.map((kv) => kv.version), ['3', '2', '2', '1', '1']);
    assert.equal(text(byVersion[0]!.key), `${p}a`);
  });

  it('sorts before applying the limit', async () => {
    const p = t.prefix('range-sort-limit');
    await sortFixture(p);
    const top = await t.client.range({ ...underPrefix(p), sort_target: 'Key', sort_order: 'Descend', limit: 2 });
    assert.deepEqual([keysOf(top.kvs, p), top.count, top.more], [['e', 'd'], '5', true]);
    const latest = await t.client.range({ ...underPrefix(p), sort_target: 'Mod', sort_order: 'Descend', limit: 1 });
    assert.deepEqual(keysOf(latest.kvs, p), ['c']);
  });

  it('filters by min/max mod and create revision (count stays the unfiltered count, as etcd)', async () => {
    const p = t.prefix('range-filter');
    const r = [] as bigint[];
    for (const k of ['a', 'b', 'c', 'd']) r.push(rev(await t.client.put({ key: b(p + k), value: b(k) })));
    const rb2 = rev(await t.client.put({ key: b(`${p}b`), value: b('b2') })); // b: create r[1], mod rb2
    const keys = async (f: Record<string, bigint>) => {
      const res = await t.client.range({ ...underPrefix(p), ...Object.fromEntries(Object.entries(f).map(([k, v]) => [k, String(v)])) });
      assert.equal(res.count, '4');
      return keysOf(res.kvs, p);
    };
    assert.deepEqual(await keys({ min_mod_revision: r[2]! }), ['b', 'c', 'd']);
    assert.deepEqual(await keys({ max_mod_revision: r[2]! }), ['a', 'c']);
    assert.deepEqual(await keys({ min_mod_revision: rb2 }), ['b']);
    assert.deepEqual(await keys({ min_create_revision: r[1]!, max_create_revision: r[2]! }), ['b', 'c']);
    assert.deepEqual(await keys({ max_create_revision: r[0]! }), ['a']);
    assert.deepEqual(await keys({ min_create_revision: r[3]! + 100n }), []);
  });

  it('serializable reads answer like linearizable ones', async () => {
    const p = t.prefix('range-serializable');
    for (const k of ['a', 'b']) await t.client.put({ key: b(p + k), value: b(k) });
    const lin = await t.client.range(underPrefix(p));
    const ser = await t.client.range({ ...underPrefix(p), serializable: true });
    assert.deepEqual([ser.kvs, ser.count, ser.more], [lin.kvs, lin.count, lin.more]);
    assert.equal(rev(ser), rev(lin));
  });

  it('reads at an older revision see that snapshot', async () => {
    const p = t.prefix('range-at-rev');
    const r1 = rev(await t.client.put({ key: b(`${p}a`), value: b('1') }));
    await t.client.put({ key: b(`${p}a`), value: b('2') });
    await t.client.put({ key: b(`${p}b`), value: b('1') });
    await t.client.deleteRange({ key: b(`${p}a`) });
    const old = await t.client.range({ ...underPrefix(p), revision: String(r1) });
    assert.deepEqual(keysOf(old.kvs, p), ['a']);
    assert.equal(text(old.kvs[0]!.value), '1');
    assert.equal(old.count, '1');
    const now = await t.client.range(underPrefix(p));
    assert.deepEqual(keysOf(now.kvs, p), ['b']);
  });

  it('range_end "\\0" means every key from key on; key "\\0" with it means every key', async () => {
    const p = t.prefix('range-zero');
    for (const k of ['a', 'b', 'c']) await t.client.put({ key: b(p + k), value: b(k) });
    const fromB = await t.client.range({ key: b(`${p}b`), range_end: ZERO_BYTE });
    const fromBKeys = fromB.kvs.map((kv) => kv.key);
    assert.deepEqual(fromBKeys.slice(0, 2), [b(`${p}b`), b(`${p}c`)]);
    assert.ok(fromBKeys.every((k) => Buffer.compare(k, b(`${p}b`)) >= 0));
    assert.deepEqual([...fromBKeys].sort(Buffer.compare), fromBKeys, 'bytewise ascending');
    assert.equal(fromB.count, String(fromB.kvs.length));

    const all = await t.client.range({ key: ZERO_BYTE, range_end: ZERO_BYTE, keys_only: true });
    const allKeys = all.kvs.map((kv) => text(kv.key));
    for (const k of ['a', 'b', 'c']) assert.ok(allKeys.includes(p + k), `all keys include ${p + k}`);
    assert.ok(BigInt(all.count) >= BigInt(fromB.count) + 1n);
    const counted = await t.client.range({ key: ZERO_BYTE, range_end: ZERO_BYTE, count_only: true });
    assert.equal(counted.count, all.count);
  });
});

/** Put (prev_kv, ignore_value, ignore_lease, versions) and DeleteRange (counts, prev_kvs, revisions). */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { b, prefixEnd, rev, text, underPrefix } from '../support/bytes.js';
import { contractSuite } from '../support/contract.js';
import { ETCD_ERRORS } from '../support/etcd-errors.js';

await contractSuite('put and delete', (t) => {
  it('put keeps create_revision and counts versions; a put after a delete starts over', async () => {
    const key = b(`${t.prefix('put-versions')}k`);
    const r1 = rev(await t.client.put({ key, value: b('1') }));
    const r2 = rev(await t.client.put({ key, value: b('2') }));
    let kv = (await t.client.range({ key })).kvs[0]!;
    assert.deepEqual([kv.create_revision, kv.mod_revision, kv.version], [String(r1), String(r2), '2']);
    await t.client.deleteRange({ key });
    const r4 = rev(await t.client.put({ key, value: b('3') }));
    kv = (await t.client.range({ key })).kvs[0]!;
    assert.deepEqual([kv.create_revision, kv.mod_revision, kv.version], [String(r4), String(r4), '1']);
  });

  it('put with prev_kv returns the previous key-value, or none for a new key', async () => {
    const key = b(`${t.prefix('put-prev')}k`);
    const first = await t.client.put({ key, value: b('1'), prev_kv: true });
    assert.equal(first.prev_kv, null);
    const second = await t.client.put({ key, value: b('2'), prev_kv: true });
    assert.ok(second.prev_kv);
    assert.deepEqual(
      [text(second.prev_kv.value), second.prev_kv.mod_revision, second.prev_kv.version],
      ['1', first.header.revision, '1'],
    );
    const without = await t.client.put({ key, value: b('3') });
    assert.equal(without.prev_kv, null, 'no prev_kv unless asked');
  });

  it('ignore_value keeps the value, ignore_lease keeps the lease', async () => {
    const key = b(`${t.prefix('put-ignore')}k`);
    const lease = await t.client.leaseGrant(60);
    try {
      await t.client.put({ key, value: b('keep-me'), lease: lease.ID });
      const r2 = rev(await t.client.put({ key, ignore_value: true, lease: lease.ID }));
      let kv = (await t.client.range({ key })).kvs[0]!;
      assert.deepEqual([text(kv.value), kv.lease, kv.version, kv.mod_revision], ['keep-me', lease.ID, '2', String(r2)]);

      const r3 = rev(await t.client.put({ key, value: b('new'), ignore_lease: true }));
      kv = (await t.client.range({ key })).kvs[0]!;
      assert.deepEqual([text(kv.value), kv.lease, kv.version, kv.mod_revision], ['new', lease.ID, '3', String(r3)]);

      // A plain put without a lease detaches the key from its lease.
      await t.client.put({ key, value: b('detached') });
      kv = (await t.client.range({ key })).kvs[0]!;
      assert.equal(kv.lease, '0');
      assert.deepEqual((await t.client.leaseTimeToLive(lease.ID, true)).keys, []);
    } finally {
      await t.client.leaseRevoke(lease.ID);
    }
  });

  it('ignore_value / ignore_lease errors', async () => {
    const p = t.prefix('put-ignore-errors');
    const absent = b(`${p}absent`);
    const present = b(`${p}present`);
    await t.client.put({ key: present, value: b('v') });
    await assert.rejects(t.client.put({ key: absent, ignore_value: true }), ETCD_ERRORS.keyNotFound);
    await assert.rejects(t.client.put({ key: absent, value: b('v'), ignore_lease: true }), ETCD_ERRORS.keyNotFound);
    await assert.rejects(t.client.put({ key: present, value: b('x'), ignore_value: true }), ETCD_ERRORS.valueProvided);
    await assert.rejects(t.client.put({ key: present, lease: 12345, ignore_lease: true }), ETCD_ERRORS.leaseProvided);
    assert.equal((await t.client.range({ key: absent })).count, '0');
    assert.equal(text((await t.client.range({ key: present })).kvs[0]!.value), 'v');
  });

  it('delete of one key returns deleted 1 and bumps the revision once', async () => {
    const key = b(`${t.prefix('del-one')}k`);
    const r1 = rev(await t.client.put({ key, value: b('v') }));
    const res = await t.client.deleteRange({ key });
    assert.deepEqual([res.deleted, res.prev_kvs], ['1', []]);
    assert.equal(rev(res), r1 + 1n);
    assert.equal((await t.client.range({ key })).count, '0');
  });

  it('delete of a range deletes every key in it at one revision, with prev_kvs in key order', async () => {
    const p = t.prefix('del-range');
    for (const k of ['c', 'a', 'b']) await t.client.put({ key: b(p + k), value: b(`v-${k}`) });
    await t.client.put({ key: b(`${p.slice(0, -1)}0`), value: b('outside') }); // just past the prefix
    const r0 = rev(await t.client.range({ key: b(p) }));
    const res = await t.client.deleteRange({ ...underPrefix(p), prev_kv: true });
    assert.equal(res.deleted, '3');
    assert.equal(rev(res), r0 + 1n, 'one delete request is one revision');
    assert.deepEqual(res.prev_kvs.map((kv) => [text(kv.key), text(kv.value)]), ['a', 'b', 'c'].map((k) => [p + k, `v-${k}`]));
    assert.equal((await t.client.range(underPrefix(p))).count, '0');
    assert.equal((await t.client.range({ key: b(`${p.slice(0, -1)}0`) })).count, '1', 'range_end is exclusive');
  });

  it('deleting nothing returns deleted 0 and does not bump the revision', async () => {
    const p = t.prefix('del-nothing');
    const r0 = rev(await t.client.put({ key: b(`${p}other`), value: b('v') }));
    const one = await t.client.deleteRange({ key: b(`${p}missing`), prev_kv: true });
    assert.deepEqual([one.deleted, one.prev_kvs, rev(one)], ['0', [], r0]);
    const range = await t.client.deleteRange({ key: b(`${p}x`), range_end: prefixEnd(`${p}x`) });
    assert.deepEqual([range.deleted, rev(range)], ['0', r0]);
    assert.equal(rev(await t.client.range({ key: b(p) })), r0);
  });
});

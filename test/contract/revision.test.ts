/**
 * header.revision rules: a fresh store is at 1, reads never bump it, every write returns its own revision,
 * and every response reports the current revision (also reads at an older revision).
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { b, rev, underPrefix } from '../support/bytes.js';
import { contractSuite } from '../support/contract.js';
import { EtcdClient } from '../support/grpc.js';

await contractSuite('header revision', (t) => {
  it('a fresh store is at revision 1 and its first write is revision 2', async () => {
    const fresh = await t.startFresh();
    const client = new EtcdClient(fresh.address);
    try {
      const empty = await client.range({ key: b('anything') });
      assert.equal(empty.header.revision, '1');
      assert.equal((await client.status()).header.revision, '1');
      const put = await client.put({ key: b('first'), value: b('1') });
      assert.equal(put.header.revision, '2');
      const kv = (await client.range({ key: b('first') })).kvs[0]!;
      assert.deepEqual([kv.create_revision, kv.mod_revision, kv.version], ['2', '2', '1']);
    } finally {
      client.close();
      await fresh.stop();
    }
  });

  it('reads never bump the revision', async () => {
    const p = t.prefix('rev-reads');
    const r0 = rev(await t.client.put({ key: b(`${p}k`), value: b('v') }));
    for (let i = 0; i < 3; i++) {
      assert.equal(rev(await t.client.range({ key: b(`${p}k`) })), r0);
      assert.equal(rev(await t.client.range({ ...underPrefix(p), count_only: true })), r0);
      assert.equal(rev(await t.client.txn({ success: [{ request_range: { key: b(`${p}k`) } }] })), r0);
      assert.equal(rev(await t.client.status()), r0);
    }
  });

  it('every write returns its own revision, one more than the last', async () => {
    const p = t.prefix('rev-writes');
    const r0 = rev(await t.client.range({ key: b(p) }));
    const r1 = rev(await t.client.put({ key: b(`${p}a`), value: b('1') }));
    const r2 = rev(await t.client.put({ key: b(`${p}a`), value: b('2') }));
    const r3 = rev(await t.client.txn({ success: [{ request_put: { key: b(`${p}b`), value: b('1') } }] }));
    const r4 = rev(await t.client.deleteRange({ key: b(`${p}a`) }));
    assert.deepEqual([r1, r2, r3, r4], [r0 + 1n, r0 + 2n, r0 + 3n, r0 + 4n]);
    const kv = (await t.client.range({ key: b(`${p}b`) })).kvs[0]!;
    assert.equal(kv.mod_revision, String(r3));
  });

  it('a read at an older revision still reports the current revision', async () => {
    const p = t.prefix('rev-old-read');
    const r1 = rev(await t.client.put({ key: b(`${p}k`), value: b('1') }));
    const r2 = rev(await t.client.put({ key: b(`${p}k`), value: b('2') }));
    const old = await t.client.range({ key: b(`${p}k`), revision: String(r1) });
    assert.equal(old.kvs[0]!.mod_revision, String(r1));
    assert.equal(rev(old), r2);
  });

  it('a read on another connection reports at least every acknowledged write', async () => {
    const p = t.prefix('rev-other-conn');
    const other = t.newClient();
    for (let i = 0; i < 10; i++) {
      const written = rev(await t.client.put({ key: b(`${p}${i}`), value: b('v') }));
      const seen = await other.range({ key: b(`${p}${i}`) });
      assert.ok(rev(seen) >= written, `read header ${rev(seen)} < acknowledged write ${written}`);
      assert.equal(seen.count, '1', 'an acknowledged write is visible to every later read');
    }
  });

  it('headers carry a nonzero cluster_id and member_id', async () => {
    const res = await t.client.range({ key: b(t.prefix('rev-header')) });
    assert.notEqual(res.header.cluster_id, '0');
    assert.notEqual(res.header.member_id, '0');
    const status = await t.client.status();
    assert.equal(res.header.member_id, status.header.member_id);
    assert.equal(res.header.cluster_id, status.header.cluster_id);
  });
});

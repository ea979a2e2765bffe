/**
 * A real client (the `etcd3` npm package) doing everyday work: KV, transactions, watches, leases. Catches
 * wire-level surprises the raw client would tolerate.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { Etcd3, type IKeyValue } from 'etcd3';
import { contractSuite } from '../support/contract.js';
import { waitUntil } from '../support/wait.js';

await contractSuite('etcd3 npm client', (t) => {
  let client: Etcd3;
  before(() => {
    client = new Etcd3({ hosts: `http://${t.address}` });
  });
  after(() => client?.close());

  it('put, get, getAll with prefix, count, sort and delete', async () => {
    const p = t.prefix('etcd3-kv');
    await client.put(`${p}b`).value('2');
    await client.put(`${p}a`).value('1');
    await client.put(`${p}c`).value(JSON.stringify({ n: 3 }));
    assert.equal(await client.get(`${p}a`).string(), '1');
    assert.deepEqual(await client.get(`${p}c`).json(), { n: 3 });
    assert.equal(await client.get(`${p}missing`).string(), null);
    assert.deepEqual(await client.getAll().prefix(p).keys(), [`${p}a`, `${p}b`, `${p}c`]);
    assert.equal(await client.getAll().prefix(p).count(), 3);
    assert.deepEqual(Object.keys(await client.getAll().prefix(p).sort('Key', 'Descend').limit(2).strings()), [`${p}c`, `${p}b`]);
    const prev = await client.delete().prefix(p).getPrevious();
    assert.deepEqual(prev.map((kv) => kv.value.toString()), ['1', '2', JSON.stringify({ n: 3 })]);
    assert.equal(await client.getAll().prefix(p).count(), 0);
  });

  it('if/then/else transactions', async () => {
    const key = `${t.prefix('etcd3-txn')}k`;
    const create = () => client.if(key, 'Mod', '==', 0).then(client.put(key).value('first')).else(client.get(key)).commit();
    assert.equal((await create()).succeeded, true);
    const second = await create();
    assert.equal(second.succeeded, false);
    assert.equal(second.responses[0]!.response_range!.kvs[0]!.value.toString(), 'first');
    const swap = await client.if(key, 'Value', '==', 'first').then(client.put(key).value('second')).commit();
    assert.equal(swap.succeeded, true);
    assert.equal(await client.get(key).string(), 'second');
  });

  it('watches a prefix: put and delete events with previous values', async () => {
    const p = t.prefix('etcd3-watch');
    const seen: { type: string; key: string; value: string; prev?: string }[] = [];
    const record = (type: string) => (kv: IKeyValue, prev?: IKeyValue) =>
      seen.push({ type, key: kv.key.toString(), value: kv.value.toString(), prev: prev?.value.toString() });
    const watcher = await client.watch().prefix(p).withPreviousKV().create();
    watcher.on('put', record('put')).on('delete', record('delete'));
    try {
      await client.put(`${p}k`).value('1');
      await client.put(`${p}k`).value('2');
      await client.delete().key(`${p}k`);
      await waitUntil('three watch events', () => (seen.length >= 3 ? true : undefined));
      assert.deepEqual(seen, [
        { type: 'put', key: `${p}k`, value: '1', prev: undefined },
        { type: 'put', key: `${p}k`, value: '2', prev: '1' },
        { type: 'delete', key: `${p}k`, value: '', prev: '2' },
      ]);
    } finally {
      await watcher.cancel();
    }
  });

  it('leases: grant, attach, keep alive once, revoke deletes the key', async () => {
    const key = `${t.prefix('etcd3-lease')}k`;
    const lease = client.lease(60, { autoKeepAlive: false });
    try {
      const id = await lease.grant();
      assert.match(id, /^[1-9]\d*$/, 'lease IDs arrive as decimal strings');
      await lease.put(key).value('leased');
      const kv = (await client.get(key).exec()).kvs[0]!;
      assert.equal(kv.lease, id);
      const renewed = await lease.keepaliveOnce();
      assert.deepEqual([renewed.ID, renewed.TTL], [id, '60']);
    } finally {
      await lease.revoke();
    }
    assert.equal(await client.get(key).string(), null);
  });
});

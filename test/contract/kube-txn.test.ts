/**
 * The four Txn shapes kube-apiserver sends, in both branches: what it reads back from the response decides
 * whether an object was created, updated, deleted or has to be retried.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { b, rev, text } from '../support/bytes.js';
import { contractSuite } from '../support/contract.js';
import { COMPACT_REV_KEY, kubeCompactMarker, kubeCreate, kubeDelete, kubeUpdate } from '../support/kube-txn.js';

await contractSuite('kube-apiserver txn shapes', (t) => {
  it('create: puts an absent key; a second create fails without bumping the revision', async () => {
    const key = b(`${t.prefix('kube-create')}pod`);
    const created = await t.client.txn(kubeCreate(key, b('v1')));
    assert.equal(created.succeeded, true);
    assert.equal(created.responses.length, 1);
    assert.equal(created.responses[0]!.response, 'response_put');
    const r1 = rev(created);

    const got = await t.client.range({ key });
    assert.equal(got.kvs.length, 1);
    const kv = got.kvs[0]!;
    assert.equal(text(kv.value), 'v1');
    assert.equal(BigInt(kv.create_revision), r1);
    assert.equal(BigInt(kv.mod_revision), r1);
    assert.equal(kv.version, '1');

    const again = await t.client.txn(kubeCreate(key, b('v2')));
    assert.equal(again.succeeded, false);
    assert.deepEqual(again.responses, []);
    assert.equal(rev(again), r1, 'a failed compare must not bump the revision');
    assert.equal(text((await t.client.range({ key })).kvs[0]!.value), 'v1');
  });

  it('update: succeeds at the current mod_revision; a stale one fails and returns the current object', async () => {
    const key = b(`${t.prefix('kube-update')}cm`);
    const r1 = rev(await t.client.txn(kubeCreate(key, b('v1'))));

    const updated = await t.client.txn(kubeUpdate(key, r1, b('v2')));
    assert.equal(updated.succeeded, true);
    assert.equal(updated.responses[0]!.response, 'response_put');
    const r2 = rev(updated);
    assert.equal(r2, r1 + 1n);
    const kv = (await t.client.range({ key })).kvs[0]!;
    assert.deepEqual(
      { value: text(kv.value), create: kv.create_revision, mod: kv.mod_revision, version: kv.version },
      { value: 'v2', create: String(r1), mod: String(r2), version: '2' },
    );

    const stale = await t.client.txn(kubeUpdate(key, r1, b('v3')));
    assert.equal(stale.succeeded, false);
    assert.equal(rev(stale), r2, 'a failed compare must not bump the revision');
    assert.equal(stale.responses.length, 1);
    const current = stale.responses[0]!;
    assert.equal(current.response, 'response_range');
    assert.equal(current.response_range!.count, '1');
    assert.equal(text(current.response_range!.kvs[0]!.value), 'v2');
    assert.equal(current.response_range!.kvs[0]!.mod_revision, String(r2));
  });

  it('update of a key deleted meanwhile fails and returns no object', async () => {
    const key = b(`${t.prefix('kube-update-gone')}cm`);
    const r1 = rev(await t.client.txn(kubeCreate(key, b('v1'))));
    const deleted = await t.client.deleteRange({ key });
    const gone = await t.client.txn(kubeUpdate(key, r1, b('v2')));
    assert.equal(gone.succeeded, false);
    assert.equal(rev(gone), rev(deleted));
    assert.equal(gone.responses[0]!.response_range!.count, '0');
    assert.deepEqual(gone.responses[0]!.response_range!.kvs, []);
  });

  it('delete: deletes at the current mod_revision; a stale one fails and returns the current object', async () => {
    const key = b(`${t.prefix('kube-delete')}secret`);
    const r1 = rev(await t.client.txn(kubeCreate(key, b('v1'))));
    const r2 = rev(await t.client.txn(kubeUpdate(key, r1, b('v2'))));

    const stale = await t.client.txn(kubeDelete(key, r1));
    assert.equal(stale.succeeded, false);
    assert.equal(rev(stale), r2);
    assert.equal(stale.responses[0]!.response, 'response_range');
    assert.equal(text(stale.responses[0]!.response_range!.kvs[0]!.value), 'v2');
    assert.equal((await t.client.range({ key })).count, '1', 'a failed delete must leave the key');

    const deleted = await t.client.txn(kubeDelete(key, r2));
    assert.equal(deleted.succeeded, true);
    assert.equal(deleted.responses[0]!.response, 'response_delete_range');
    assert.equal(deleted.responses[0]!.response_delete_range!.deleted, '1');
    assert.equal(rev(deleted), r2 + 1n);
    assert.equal((await t.client.range({ key })).count, '0');
  });

  it('compaction marker: bumps compact_rev_key at the expected version, else returns it', async () => {
    // The only test in this file touching compact_rev_key (shared per server).
    const before = await t.client.range({ key: COMPACT_REV_KEY });
    const version = before.kvs[0]?.version ?? '0';
    const r0 = rev(before);

    const won = await t.client.txn(kubeCompactMarker(version, r0));
    assert.equal(won.succeeded, true);
    assert.equal(won.responses[0]!.response, 'response_put');
    assert.equal(rev(won), r0 + 1n);
    const marker = (await t.client.range({ key: COMPACT_REV_KEY })).kvs[0]!;
    assert.equal(marker.version, String(BigInt(version) + 1n));
    assert.equal(text(marker.value), String(r0));

    // Another apiserver that still expects the old version loses and learns the current one.
    const lost = await t.client.txn(kubeCompactMarker(version, r0 + 1n));
    assert.equal(lost.succeeded, false);
    assert.equal(rev(lost), r0 + 1n);
    const seen = lost.responses[0]!.response_range!.kvs[0]!;
    assert.equal(seen.version, marker.version);
    assert.equal(text(seen.value), String(r0));
  });
});

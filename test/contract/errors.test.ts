/**
 * Errors clients match by code and exact text. (Compacted-revision errors live in compaction.test.ts, which
 * owns its server's compaction state.)
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { b, rev } from '../support/bytes.js';
import { contractSuite } from '../support/contract.js';
import { ETCD_ERRORS } from '../support/etcd-errors.js';

/** etcd's default --max-request-bytes is 1.5 MiB; its gRPC limit is that plus 512 KiB, so this reaches etcd. */
const OVER_LIMIT_BYTES = 1.5 * 1024 * 1024 + 64 * 1024;

await contractSuite('errors', (t) => {
  it('a read at a future revision is OutOfRange "required revision is a future revision"', async () => {
    const r0 = rev(await t.client.range({ key: b('x') }));
    await assert.rejects(t.client.range({ key: b('x'), revision: String(r0 + 1n) }), ETCD_ERRORS.futureRevision);
    await assert.rejects(t.client.range({ key: b('x'), revision: String(r0 + 1000n) }), ETCD_ERRORS.futureRevision);
  });

  it('a request over 1.5 MiB is InvalidArgument "request is too large" and writes nothing', async () => {
    const key = b(`${t.prefix('err-large')}k`);
    const r0 = rev(await t.client.range({ key }));
    await assert.rejects(t.client.put({ key, value: Buffer.alloc(OVER_LIMIT_BYTES, 0x61) }), ETCD_ERRORS.requestTooLarge);
    await assert.rejects(
      t.client.txn({ success: [{ request_put: { key, value: Buffer.alloc(OVER_LIMIT_BYTES, 0x61) } }] }),
      ETCD_ERRORS.requestTooLarge,
    );
    const after = await t.client.range({ key });
    assert.equal(after.count, '0');
    assert.equal(rev(after), r0);
    // Just under the limit is fine.
    const ok = await t.client.put({ key, value: Buffer.alloc(1024 * 1024, 0x62) });
    assert.equal(rev(ok), r0 + 1n);
    assert.equal((await t.client.range({ key })).kvs[0]!.value.length, 1024 * 1024);
  });

  it('unknown leases are NotFound "requested lease not found"', async () => {
    const key = b(`${t.prefix('err-lease')}k`);
    const unknown = '7070707070707';
    await assert.rejects(t.client.leaseRevoke(unknown), ETCD_ERRORS.leaseNotFound);
    await assert.rejects(t.client.put({ key, value: b('v'), lease: unknown }), ETCD_ERRORS.leaseNotFound);
    await assert.rejects(
      t.client.txn({ success: [{ request_put: { key, value: b('v'), lease: unknown } }] }),
      ETCD_ERRORS.leaseNotFound,
    );
    assert.equal((await t.client.range({ key })).count, '0');
  });

  it('an empty key is InvalidArgument "key is not provided"', async () => {
    await assert.rejects(t.client.put({ key: Buffer.alloc(0), value: b('v') }), ETCD_ERRORS.keyNotProvided);
    await assert.rejects(t.client.range({ key: Buffer.alloc(0) }), ETCD_ERRORS.keyNotProvided);
    await assert.rejects(t.client.deleteRange({ key: Buffer.alloc(0) }), ETCD_ERRORS.keyNotProvided);
  });
});

/**
 * Edges where a client can tell the middleware from etcd, each checked against the real etcd and the
 * middleware alike: watches on an empty range or from a negative revision, Compact(0) on a store never
 * compacted, the smallest lease TTL, a frame flagged compressed without an encoding, and revisions that
 * move only on successful writes.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { it } from 'node:test';
import { status as Status } from '@grpc/grpc-js';
import { b, rev } from '../support/bytes.js';
import { contractSuite } from '../support/contract.js';
import { ETCD_ERRORS } from '../support/etcd-errors.js';

const MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;

/** Sends one raw gRPC frame with the compressed flag set to KV/Range; resolves with grpc-status and message. */
function compressedFrame(address: string, encoding: string | undefined): Promise<{ status: string; message: string }> {
  const session = http2.connect(`http://${address}`);
  return new Promise<{ status: string; message: string }>((resolve, reject) => {
    session.on('error', reject);
    const req = session.request({
      ':method': 'POST',
      ':path': '/etcdserverpb.KV/Range',
      'content-type': 'application/grpc',
      te: 'trailers',
      ...(encoding ? { 'grpc-encoding': encoding } : {}),
    });
    let headers: http2.IncomingHttpHeaders = {};
    const settle = (h: http2.IncomingHttpHeaders) =>
      resolve({ status: String(h['grpc-status']), message: decodeURIComponent(String(h['grpc-message'] ?? '')) });
    req.on('response', (h) => (headers = h));
    req.on('trailers', (h) => settle(h));
    req.on('end', () => settle(headers)); // a trailers-only answer carries the status in its headers
    req.on('error', reject);
    req.on('data', () => undefined);
    // flag 1 (compressed), length 3, RangeRequest{key: "a"} (not compressed at all)
    req.end(Buffer.from([1, 0, 0, 0, 3, 0x0a, 0x01, 0x61]));
  }).finally(() => session.close());
}

await contractSuite('etcd edges', (t) => {
  it('a watch whose key >= range_end is created and canceled at once: ID -1, "mvcc: watcher range is empty"', async () => {
    const p = t.prefix('watch-empty');
    const w = t.client.watch();
    for (const [key, range_end] of [
      [`${p}b`, `${p}a`],
      [`${p}b`, `${p}b`],
    ]) {
      const res = await w.create({ key: b(key!), range_end: b(range_end!) });
      assert.equal(res.watch_id, '-1');
      assert.equal(res.created, true);
      assert.equal(res.canceled, true);
      assert.equal(res.cancel_reason, 'mvcc: watcher range is empty');
    }
    // the refused watches took no ID: the first real one on the stream is 0, and it sees events
    const ok = await w.create({ key: b(`${p}a`), range_end: b(`${p}b`) });
    assert.equal(ok.watch_id, '0');
    assert.equal(ok.canceled, false);
    await t.client.put({ key: b(`${p}a`), value: b('1') });
    assert.equal((await w.waitForEvents('0', 1)).length, 1);
    w.close();
  });

  // Relies on this file's server never being compacted: no other case here compacts.
  it('on a store never compacted: a watch from a negative revision is canceled as compacted (-1); Compact(0) succeeds once', async () => {
    const p = t.prefix('never-compacted');
    const c = t.client;
    const r1 = rev(await c.put({ key: b(`${p}k`), value: b('1') }));
    const w = c.watch();
    const created = await w.create({ key: b(`${p}k`), start_revision: '-5' });
    assert.equal(created.canceled, false);
    const canceled = await w.waitFor('the compaction cancel', (rs) => rs.find((r) => r.canceled));
    assert.equal(canceled.watch_id, created.watch_id);
    assert.equal(canceled.compact_revision, '-1', 'etcd compact revision before any compaction');
    assert.equal(canceled.header.revision, '0', 'etcd sends revision 0 in a compaction cancel');

    const compacted = await c.compact(0);
    assert.equal(rev(compacted), r1);
    await assert.rejects(c.compact(0), ETCD_ERRORS.compacted);
    // (etcd 3.4 then answers a watch from a negative revision with compact_revision 0 and does not cancel
    // it, leaving a watch that never fires; the middleware cancels it with compact_revision 0.)
    assert.equal((await c.range({ key: b(`${p}k`) })).count, '1');
    assert.equal(rev(await c.put({ key: b(`${p}k`), value: b('2') })), r1 + 1n);
    w.close();
  });

  it('a lease TTL below the minimum (0, 1) is granted as etcd minimum, 2 s', async () => {
    for (const ttl of [0, 1, 2]) {
      const grant = await t.client.leaseGrant(ttl);
      assert.equal(grant.TTL, '2', `TTL ${ttl}`);
      assert.equal((await t.client.leaseTimeToLive(grant.ID)).grantedTTL, '2');
      await t.client.leaseRevoke(grant.ID);
    }
    assert.equal((await t.client.leaseGrant(3)).TTL, '3');
  });

  it('a frame flagged compressed with identity or no encoding is INTERNAL', async () => {
    for (const encoding of [undefined, 'identity']) {
      const res = await compressedFrame(t.address, encoding);
      assert.equal(res.status, String(Status.INTERNAL), `grpc-encoding ${encoding ?? '(none)'}`);
      assert.equal(res.message, 'grpc: compressed flag set with identity or empty encoding');
    }
    // the server still serves
    assert.ok(rev(await t.client.range({ key: b('x') })) > 0n);
  });

  it('failed writes consume no revision: revisions rise by exactly one per successful write', async () => {
    const p = t.prefix('no-gaps');
    const clients = [t.client, t.newClient(), t.newClient()];
    const r0 = rev(await t.client.put({ key: b(`${p}exists`), value: b('v') }));
    const failing = (i: number) => {
      const c = clients[i % clients.length]!;
      switch (i % 5) {
        case 0:
          return c.put({ key: b(`${p}f${i}`), value: b('v'), lease: '4242424242' }); // lease not found
        case 1:
          return c.put({ key: b(`${p}missing${i}`), ignore_value: true }); // key not found
        case 2:
          return c.txn({ success: [{ request_put: { key: b(`${p}exists`), value: b('v2') } }, { request_put: { key: b(`${p}t${i}`), value: b('v'), lease: '4242424242' } }] });
        case 3:
          return c.txn({ success: [{ request_put: { key: b(`${p}d`), value: b('1') } }, { request_put: { key: b(`${p}d`), value: b('2') } }] }); // duplicate key
        default:
          return c.put({ key: b(`${p}big${i}`), value: Buffer.alloc(MAX_REQUEST_BYTES + 1024, 0x61) }); // too large
      }
    };
    const revisions: bigint[] = [];
    for (let round = 0; round < 10; round++) {
      const ok = Array.from({ length: 8 }, (_, i) => clients[i % clients.length]!.put({ key: b(`${p}ok/${round}/${i}`), value: b('v') }));
      const bad = Array.from({ length: 5 }, (_, i) => failing(round * 5 + i));
      const [good, failed] = await Promise.all([Promise.all(ok), Promise.allSettled(bad)]);
      revisions.push(...good.map(rev));
      for (const f of failed) assert.equal(f.status, 'rejected', 'every failing write fails');
    }
    revisions.sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    assert.deepEqual(revisions, Array.from({ length: 80 }, (_, i) => r0 + 1n + BigInt(i)));
    assert.equal(rev(await t.client.range({ key: b(p) })), r0 + 80n);
  });
});

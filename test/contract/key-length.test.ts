/**
 * Long keys. etcd has no key limit of its own, only its 1.5 MiB request limit. SQLite stores keys that long
 * too; PostgreSQL and MySQL/MariaDB index the whole key in a B-tree whose entries are limited, so the
 * middleware refuses keys over 2048 bytes there (README, "Limits"). A key refused that way fails alone, with
 * InvalidArgument naming the limit: every other request of the same group commit succeeds, and no revision
 * is consumed by the failure.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import grpc from '@grpc/grpc-js';
import { b, rev } from '../support/bytes.js';
import { contractSuite } from '../support/contract.js';
import { ROUTED_RULES, type TargetName } from '../support/targets.js';

const SQL_SERVER_KEY_LIMIT = 2048;

/** The key limit the target applies to `key` (undefined: only the request size limits it, as in etcd). */
function keyLimit(target: TargetName, key: Buffer): number | undefined {
  switch (target) {
    case 'etcd':
    case 'middleware-sqlite':
      return undefined;
    case 'middleware-postgres':
    case 'middleware-mariadb':
      return SQL_SERVER_KEY_LIMIT;
    case 'middleware-routed': {
      const text = key.toString('latin1');
      // the key rules send keys to PostgreSQL, MariaDB, an etcd or a child middleware over SQLite; only the
      // SQL servers limit keys (these keys are not configmaps, so the namespace rule never takes them)
      return ROUTED_RULES.some((r) => 'regexp' in r && ['even', 'odd'].includes(r.name) && new RegExp(r.regexp.key).test(text)) ? SQL_SERVER_KEY_LIMIT : undefined;
    }
  }
}

/** A key of exactly `bytes` bytes under `prefix`, ending in `last` (the routed target routes by it). */
function longKey(prefix: string, bytes: number, last: string): Buffer {
  return Buffer.concat([b(prefix), Buffer.alloc(bytes - prefix.length - 1, 0x78), b(last)]);
}

function isKeyTooLong(limit: number, bytes: number) {
  return (err: unknown) => {
    const e = err as grpc.ServiceError;
    assert.equal(e.code, grpc.status.INVALID_ARGUMENT, `expected InvalidArgument, got ${e.code}: ${e.details}`);
    assert.match(e.details, new RegExp(`key is too long: ${bytes} bytes exceed the ${limit}-byte key limit`));
    return true;
  };
}

await contractSuite('key length', (t) => {
  it('keys of 2048, 3000 and 100,000 bytes are stored, or refused alone with InvalidArgument naming the limit', async () => {
    const p = t.prefix('keylen');
    for (const bytes of [2048, 3000, 100_000]) {
      for (const last of ['a', 'n', '_']) {
        const key = longKey(p, bytes, last);
        const limit = keyLimit(t.target, key);
        const r0 = rev(await t.client.range({ key: b(p) }));
        if (limit === undefined || bytes <= limit) {
          const res = await t.client.put({ key, value: b('v') });
          assert.equal(rev(res), r0 + 1n);
          const got = await t.client.range({ key });
          assert.equal(got.kvs[0]?.key.length, bytes);
          assert.ok(got.kvs[0]!.key.equals(key));
        } else {
          await assert.rejects(t.client.put({ key, value: b('v') }), isKeyTooLong(limit, bytes));
          await assert.rejects(t.client.txn({ success: [{ request_put: { key: b(`${p}ok`), value: b('v') } }, { request_put: { key, value: b('v') } }] }), isKeyTooLong(limit, bytes));
          assert.equal((await t.client.range({ key })).count, '0');
          assert.equal((await t.client.range({ key: b(`${p}ok`) })).count, '0', 'the failed txn wrote nothing');
          assert.equal(rev(await t.client.range({ key: b(p) })), r0, 'a refused key consumes no revision');
        }
      }
    }
  });

  it('one 3000-byte key among 16 concurrent ordinary puts: every ordinary put succeeds, revisions rise by one per write', async () => {
    const p = t.prefix('keylen-batch');
    const clients = Array.from({ length: 4 }, () => t.newClient());
    const r0 = rev(await t.client.range({ key: b(p) }));
    const revisions: bigint[] = [];
    let refused = 0;
    for (let round = 0; round < 20; round++) {
      const long = longKey(`${p}long/${round}/`, 3000, 'a');
      const limit = keyLimit(t.target, long);
      const ordinary = Array.from({ length: 16 }, (_, i) => clients[i % clients.length]!.put({ key: b(`${p}k/${round}/${i}${'0an_'[i % 4]}`), value: b(`v${i}`) }));
      const longPut = clients[round % clients.length]!.put({ key: long, value: b('long') });
      const results = await Promise.allSettled([...ordinary, longPut]);
      for (const [i, r] of results.slice(0, 16).entries()) {
        assert.equal(r.status, 'fulfilled', `ordinary put ${i} of round ${round} failed: ${r.status === 'rejected' ? (r.reason as Error).message : ''}`);
        revisions.push(rev(r.value));
      }
      const l = results[16]!;
      if (limit === undefined) {
        assert.equal(l.status, 'fulfilled', `the long key failed: ${l.status === 'rejected' ? (l.reason as Error).message : ''}`);
        revisions.push(rev(l.value));
      } else {
        assert.equal(l.status, 'rejected');
        isKeyTooLong(limit, 3000)((l as PromiseRejectedResult).reason);
        refused++;
      }
    }
    const writes = BigInt(revisions.length);
    assert.equal(writes, BigInt(20 * 17 - refused));
    // etcd's revisions move only on successful writes: exactly one per write, no gaps
    assert.deepEqual([...revisions].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)), Array.from({ length: revisions.length }, (_, i) => r0 + 1n + BigInt(i)));
    assert.equal(rev(await t.client.range({ key: b(p) })), r0 + writes);
    assert.equal((await t.client.range({ key: b(`${p}k/`), range_end: b(`${p}k0`), count_only: true })).count, String(20 * 16));
  });
});

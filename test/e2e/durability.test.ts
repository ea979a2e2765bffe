/**
 * Crash safety: kill -9 while clients write, restart on the same data. Every acknowledged write survives
 * with its value and revision, revisions continue above everything seen, compact_rev_key keeps its version
 * and value (kube-apiserver panics otherwise), and a lease granted before the crash still expires after it.
 * Runs on the middleware with SQLite and PostgreSQL; the reference etcd validates the test itself.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { b, rev, text, underPrefix } from '../support/bytes.js';
import { contractSuite } from '../support/contract.js';
import type { KeyValue } from '../support/etcd-types.js';
import { EtcdClient } from '../support/grpc.js';
import { COMPACT_REV_KEY, kubeCompactMarker, kubeCreate } from '../support/kube-txn.js';
import { waitUntil, withTimeout } from '../support/wait.js';

const WRITERS = 4;
/** Crash once this many writes are acknowledged (writers keep going until the crash). */
const ACKED_BEFORE_CRASH = 120;
/** Bound on each writer's loop, in case the crash never comes. */
const MAX_WRITES_EACH = 5_000;
/** Long enough to outlive a crash and restart, short enough to wait for. */
const LEASE_TTL = 10;

const maxOf = (xs: Iterable<bigint>) => [...xs].reduce((a, x) => (x > a ? x : a), 0n);

await contractSuite(
  'durability across kill -9',
  (t) => {
    it('acknowledged writes, revisions, compact_rev_key and leases survive a crash', async () => {
      const p = t.prefix('durable');
      const c = t.client;

      // compact_rev_key through kube-apiserver's compaction Txn, twice: version 2, value = first header revision.
      const start = await c.range({ key: COMPACT_REV_KEY });
      const v0 = BigInt(start.kvs[0]?.version ?? '0');
      assert.equal((await c.txn(kubeCompactMarker(v0, rev(start)))).succeeded, true);
      const second = await c.txn(kubeCompactMarker(v0 + 1n, rev(start) + 1n));
      assert.equal(second.succeeded, true);
      const marker = (await c.range({ key: COMPACT_REV_KEY })).kvs[0]!;
      assert.equal(marker.version, String(v0 + 2n));

      const lease = await c.leaseGrant(LEASE_TTL);
      for (const k of ['a', 'b']) {
        assert.equal((await c.txn(kubeCreate(b(`${p}lease/${k}`), b(k), lease.ID))).succeeded, true);
      }
      const beforeWriters = rev(await c.range({ key: b(p) }));

      // Concurrent writers on distinct keys, alternating plain puts and kube create Txns.
      const acked = new Map<string, { value: string; revision: bigint }>();
      const writer = async (wi: number) => {
        const wc = t.newClient();
        for (let n = 0; n < MAX_WRITES_EACH; n++) {
          const key = `${p}w/${wi}/${String(n).padStart(5, '0')}`;
          const value = `value-${wi}-${n}`;
          let revision: bigint;
          try {
            if (n % 2 === 0) revision = rev(await wc.put({ key: b(key), value: b(value) }));
            else {
              const res = await wc.txn(kubeCreate(b(key), b(value)));
              assert.equal(res.succeeded, true, `create of fresh key ${key}`);
              revision = rev(res);
            }
          } catch (err) {
            if (err instanceof assert.AssertionError) throw err;
            return; // the crash
          }
          acked.set(key, { value, revision });
        }
      };
      const writers = Promise.all(Array.from({ length: WRITERS }, (_, i) => writer(i)));
      await waitUntil(`${ACKED_BEFORE_CRASH} acknowledged writes`, () => (acked.size >= ACKED_BEFORE_CRASH ? true : undefined), {
        timeoutMs: 60_000,
        intervalMs: 5,
      });
      await t.server.kill9();
      await withTimeout(writers, 30_000, 'the writers to notice the crash');
      const maxAcked = maxOf([...acked.values()].map((a) => a.revision));

      await t.server.restart();
      const after = new EtcdClient(t.address);
      try {
        // Every acknowledged write is there, unchanged.
        const list = await after.range(underPrefix(`${p}w/`));
        const stored = new Map<string, KeyValue>(list.kvs.map((kv) => [text(kv.key), kv]));
        for (const [key, { value, revision }] of acked) {
          const kv = stored.get(key);
          assert.ok(kv, `acknowledged write ${key} (revision ${revision}) was lost`);
          assert.deepEqual([text(kv.value), kv.mod_revision], [value, String(revision)], key);
        }
        // Nothing renumbered: one revision per write, none above the current one.
        const now = rev(list);
        assert.ok(now >= maxAcked, `current revision ${now} below acknowledged ${maxAcked}`);
        const storedRevs = list.kvs.map((kv) => BigInt(kv.mod_revision));
        assert.equal(new Set(storedRevs).size, storedRevs.length, 'two writes share a revision');
        assert.ok(storedRevs.every((r) => r > beforeWriters && r <= now));

        // New writes continue above every revision seen before the crash.
        const fresh = await after.put({ key: b(`${p}after`), value: b('x') });
        assert.equal(rev(fresh), now + 1n);
        assert.ok(rev(fresh) > maxAcked);

        // History survives too: a watch from before the writers replays exactly what is stored.
        const w = after.watch();
        const hist = (await w.create({ ...underPrefix(`${p}w/0/`), start_revision: String(beforeWriters + 1n) })).watch_id;
        const expected = list.kvs.filter((kv) => text(kv.key).startsWith(`${p}w/0/`));
        const events = await w.waitForEvents(hist, expected.length, 20_000);
        assert.deepEqual(
          events.map((e) => [e.type, text(e.kv.key), e.kv.mod_revision]),
          expected.map((kv) => ['Put', text(kv.key), kv.mod_revision]),
        );

        // compact_rev_key kept version and value, and kube-apiserver's next compaction Txn wins.
        const markerAfter = (await after.range({ key: COMPACT_REV_KEY })).kvs[0]!;
        assert.deepEqual([markerAfter.version, text(markerAfter.value)], [marker.version, text(marker.value)]);
        assert.equal((await after.txn(kubeCompactMarker(markerAfter.version, rev(fresh)))).succeeded, true);

        // The lease still exists with its keys, then expires and deletes them with DELETE events.
        const leaseWatch = (await w.create({ ...underPrefix(`${p}lease/`), prev_kv: true, start_revision: String(now + 1n) })).watch_id;
        const ttl = await after.leaseTimeToLive(lease.ID, true);
        assert.equal(ttl.grantedTTL, String(LEASE_TTL));
        assert.ok(Number(ttl.TTL) > 0, `lease ${lease.ID} is gone right after restart (TTL ${ttl.TTL})`);
        assert.deepEqual(ttl.keys.map(text).sort(), [`${p}lease/a`, `${p}lease/b`]);
        const deletes = await w.waitFor(
          'DELETE events from the lease expiry',
          () => {
            const ds = w.eventsOf(leaseWatch).filter((e) => e.type === 'Delete');
            return ds.length >= 2 ? ds : undefined;
          },
          (LEASE_TTL + 20) * 1_000,
        );
        assert.deepEqual(deletes.map((e) => text(e.prev_kv?.value ?? Buffer.alloc(0))).sort(), ['a', 'b']);
        assert.equal((await after.range(underPrefix(`${p}lease/`))).count, '0');
        assert.equal((await after.leaseTimeToLive(lease.ID)).TTL, '-1');
        w.close();
      } finally {
        after.close();
      }
    });
  },
  { targets: ['etcd', 'middleware-sqlite', 'middleware-postgres'] },
);

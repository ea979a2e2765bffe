/**
 * etcd's `count` of whole ranges is carried forward from an earlier count by the events since
 * (mvcc/range-counts.ts). Under random puts, updates, deletes, range deletes, multi-key Txns, lease revokes
 * and a compaction, every count the Store reports (count_only and first pages) must equal the keys a full
 * read of the same range at the same revision returns, at the current and at older revisions.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { Backend } from '../../middleware/src/backends/backend.js';
import { openBackend } from '../../middleware/src/backends/index.js';
import type { RangeRequest } from '../../middleware/src/mvcc/api.js';
import { Store } from '../../middleware/src/mvcc/store.js';
import { Gen } from '../router/gen.js';

const b = (s: string) => Buffer.from(s);
const KEYS = ['/registry/pods/a/', '/registry/pods/b/', '/registry/configmaps/a/'].flatMap((p) => Array.from({ length: 25 }, (_, i) => `${p}${String(i).padStart(2, '0')}`));
const RANGES: { key: Buffer; range_end: Buffer }[] = [
  { key: b('/registry/pods/'), range_end: b('/registry/pods0') },
  { key: b('/registry/pods/a/'), range_end: b('/registry/pods/a0') },
  { key: b('/registry/configmaps/'), range_end: b('/registry/configmaps0') },
  { key: b('/registry/pods/a/10'), range_end: Buffer.from([0]) }, // to the end of the keyspace
];

function countingBackend(backend: Backend): { backend: Backend; calls: () => number } {
  let n = 0;
  const count = backend.count.bind(backend);
  backend.count = (...args) => (n++, count(...args));
  return { backend, calls: () => n };
}

async function run(seed: number, ringEvents: number | undefined): Promise<{ checks: number; backendCounts: number }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hk-range-counts-'));
  const c = countingBackend(openBackend(`sqlite://${path.join(dir, 'state.db')}`));
  const store = await Store.open({ backend: c.backend, ...(ringEvents ? { ringEvents } : {}) });
  const g = new Gen(seed);
  const pins: number[] = [];
  let checks = 0;
  const fresh = async (req: RangeRequest) => (await store.range({ ...req, limit: 0, keys_only: true })).kvs.length;
  const check = async (revision: number) => {
    for (const r of RANGES) {
      const expected = await fresh({ ...r, revision });
      const counted = await store.range({ ...r, revision, count_only: true });
      assert.equal(Number(counted.count), expected, `count_only of ${r.key} at ${revision} (seed ${seed})`);
      const page = await store.range({ ...r, revision, limit: 3 });
      assert.equal(Number(page.count), expected, `first page count of ${r.key} at ${revision} (seed ${seed})`);
      assert.equal(page.more, expected > 3);
      checks += 2;
    }
  };
  try {
    for (let step = 0; step < 160; step++) {
      const key = b(g.pick(KEYS));
      const op = g.int(10);
      if (op < 4) await store.put({ key, value: b(`v${step}`) });
      else if (op < 6) await store.deleteRange({ key });
      else if (op === 6) await store.deleteRange({ key: b('/registry/pods/a/0'), range_end: b('/registry/pods/a/1') });
      else if (op === 7) {
        // three different keys (the gRPC layer refuses a Txn that names a key twice before it reaches the store)
        const [k2, k3] = KEYS.filter((k) => k !== key.toString()).sort(() => g.random() - 0.5);
        await store.txn({
          compare: [],
          success: [
            { request_put: { key, value: b('t') } },
            { request_delete_range: { key: b(k2!) } },
            { request_put: { key: b(k3!), value: b('t2') } },
          ],
          failure: [],
        });
      } else if (op === 8) {
        const lease = await store.leaseGrant('0', 60);
        for (let i = 0; i < 3; i++) await store.put({ key: b(g.pick(KEYS)), value: b('leased'), lease: lease.id });
        await store.leaseRevoke(lease.id);
      } else if (step > 80 && pins.length > 4 && store.compactRevision === 0) {
        await store.compact(pins[2]!);
      }
      if (step % 8 === 0) pins.push(store.revision);
      if (step % 5 === 0) {
        await check(store.revision);
        const older = pins.filter((p) => p >= store.compactRevision);
        if (older.length) await check(g.pick(older));
      }
    }
    return { checks, backendCounts: c.calls() };
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

test('counts carried forward and back by the events in between equal full reads', async () => {
  for (const seed of [1, 2, 3]) {
    const { checks, backendCounts } = await run(seed, undefined);
    // each range is counted in storage about once, then carried: far fewer counts than checks
    assert.ok(backendCounts * 4 < checks, `seed ${seed}: ${backendCounts} counts in storage for ${checks} checks`);
  }
});

test('with a ring too small to hold the events in between, counts come from storage and are still exact', async () => {
  const { checks, backendCounts } = await run(4, 5);
  assert.ok(backendCounts > checks / 4, `${backendCounts} counts in storage for ${checks} checks: the ring could not have carried them`);
});

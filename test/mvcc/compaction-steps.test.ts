/**
 * A large compaction shares the write queue with writers (mvcc/compaction.ts): its removal runs in short
 * steps with the writes queued meanwhile going in between, so puts keep completing while it runs instead of
 * waiting for the end. Checked by order (puts done while the compaction is still removing rows), not by time.
 * Compactions that overlap share one removal, which finishes: counted in the database file afterwards.
 */
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { openBackend } from '../../middleware/src/backends/index.js';
import { EtcdError } from '../../middleware/src/mvcc/errors.js';
import { Store } from '../../middleware/src/mvcc/store.js';

const b = (s: string) => Buffer.from(s);

/** A Store on a fresh SQLite file holding STATIC keys written once, then KEYS keys written REVISIONS times each. */
async function withHistory(fn: (store: Store, file: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hk-compaction-steps-'));
  const file = path.join(dir, 'state.db');
  const store = await Store.open({ backend: openBackend(`sqlite://${file}`) });
  try {
    const value = b('x'.repeat(256));
    // written once, first: the oldest revisions hold rows compaction keeps, so a walk restarted from the
    // beginning scans them again before it reaches anything to remove
    await Promise.all(Array.from({ length: STATIC }, (_, i) => store.put({ key: b(`/registry/pods/ns/s${String(i).padStart(5, '0')}`), value })));
    for (let r = 0; r < REVISIONS; r++) {
      // concurrent puts: group commit writes them in a few transactions
      await Promise.all(Array.from({ length: KEYS }, (_, i) => store.put({ key: b(`/registry/leases/ns/k${String(i).padStart(5, '0')}`), value })));
    }
    await fn(store, file);
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}
const KEYS = 2000;
const REVISIONS = 11;
/** Rows removed per batch: the history below is 20,000 stale rows, so 200 batches. */
const BATCH = 100;
const PUTS_DURING = 20;
/** Keys written once, before the history. */
const STATIC = 1000;

test('puts complete while a large compaction is still removing rows', async () => {
  await withHistory(async (store) => {
    const value = b('x'.repeat(256));
    const head = store.revision;
    let compacted = false;
    const compaction = store.compact(head, { physical: true, batchSize: BATCH }).then(() => {
      compacted = true;
    });
    const doneBeforeCompacted: boolean[] = [];
    for (let i = 0; i < PUTS_DURING; i++) {
      await store.put({ key: b(`/registry/pods/ns/p${i}`), value });
      doneBeforeCompacted.push(!compacted);
    }
    await compaction;

    assert.deepEqual(
      doneBeforeCompacted,
      Array.from({ length: PUTS_DURING }, () => true),
      `every put issued during the compaction completed before it ended (one entry per put, in order): writes must not wait for all ${(REVISIONS - 1) * KEYS} rows`,
    );
    // the compaction itself did its work
    await assert.rejects(store.range({ key: b('/registry/leases/ns/k00000'), revision: head - 1 }), (err: unknown) => err instanceof EtcdError && err.kind === 'compacted');
    const latest = await store.range({ key: b('/registry/leases/ns/k00000') });
    assert.equal(latest.kvs[0]!.version, REVISIONS, 'the newest version of each key is kept');
  });
});

test('overlapping compactions share one removal, which removes every stale row', async () => {
  await withHistory(async (store, file) => {
    const head = store.revision;
    // the second comes while the first is still removing rows; each would otherwise restart the other's walk
    const opts = { physical: true, batchSize: BATCH, timeoutMs: 1000 };
    const first = store.compact(head - KEYS * 5, opts);
    await new Promise((r) => setImmediate(r));
    await Promise.all([first, store.compact(head, opts)]);
    const db = new Database(file, { readonly: true });
    try {
      const { n } = db.prepare('SELECT count(*) AS n FROM kv').get() as { n: number };
      assert.equal(n, STATIC + KEYS, `after compacting to the head, one row per key is left (found ${n}: the removal stopped early)`);
    } finally {
      db.close();
    }
  });
});

/**
 * A large compaction shares the write queue with writers (mvcc/compaction.ts): its removal runs in short
 * steps with the writes queued meanwhile going in between, so puts keep completing while it runs instead of
 * waiting for the end. Checked by order (puts done while the compaction is still removing rows), not by time.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { openBackend } from '../../middleware/src/backends/index.js';
import { EtcdError } from '../../middleware/src/mvcc/errors.js';
import { Store } from '../../middleware/src/mvcc/store.js';

const b = (s: string) => Buffer.from(s);
const KEYS = 2000;
const REVISIONS = 11;
/** Rows removed per batch: the history below is 20,000 stale rows, so 200 batches. */
const BATCH = 100;
const PUTS_DURING = 20;

test('puts complete while a large compaction is still removing rows', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hk-compaction-steps-'));
  const store = await Store.open({ backend: openBackend(`sqlite://${path.join(dir, 'state.db')}`) });
  try {
    const value = b('x'.repeat(256));
    for (let r = 0; r < REVISIONS; r++) {
      // concurrent puts: group commit writes them in a few transactions
      await Promise.all(Array.from({ length: KEYS }, (_, i) => store.put({ key: b(`/registry/leases/ns/k${String(i).padStart(5, '0')}`), value })));
    }
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
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});

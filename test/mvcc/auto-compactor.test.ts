/**
 * The automatic compaction policy (mvcc/auto-compactor.ts) over a real Store on SQLite: a run compacts to
 * --compact-min-retain below the head, keeps reads within the retained revisions working, does nothing when
 * there is nothing new to compact, and logs (not throws) when the store refuses.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { openBackend } from '../../middleware/src/backends/index.js';
import { AutoCompactor } from '../../middleware/src/mvcc/auto-compactor.js';
import { EtcdError } from '../../middleware/src/mvcc/errors.js';
import { Store } from '../../middleware/src/mvcc/store.js';
import { captureLogger, type LogRecord } from '../support/capture-logger.js';

const b = (s: string) => Buffer.from(s);

/** A Store on a fresh SQLite file, an AutoCompactor over it keeping `minRetain`, and the records it logs. */
async function setUp(minRetain: number) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hk-auto-compactor-'));
  const store = await Store.open({ backend: openBackend(`sqlite://${path.join(dir, 'state.db')}`) });
  const records: LogRecord[] = [];
  const compactor = new AutoCompactor(store, { intervalMs: 60_000, minRetain, log: captureLogger(records) });
  return { dir, store, records, compactor };
}

test('a run compacts to min-retain below the head, and only when that is above the compact revision', async () => {
  const { dir, store, records, compactor } = await setUp(5);
  try {
    await compactor.runOnce();
    assert.equal(store.compactRevision, 0, 'a store with fewer revisions than min-retain is not compacted');

    for (let i = 0; i < 12; i++) await store.put({ key: b('/k'), value: b(`v${i}`) });
    const head = store.revision;
    await compactor.runOnce();
    assert.equal(store.compactRevision, head - 5);
    // the retained revisions stay readable, the compacted ones do not
    const kept = await store.range({ key: b('/k'), revision: head - 5 });
    assert.equal(kept.kvs[0]!.value.toString(), 'v6');
    await assert.rejects(store.range({ key: b('/k'), revision: head - 6 }), (err: unknown) => err instanceof EtcdError && err.kind === 'compacted');

    await compactor.runOnce();
    assert.equal(store.compactRevision, head - 5, 'no new revisions: nothing to compact');
    await store.put({ key: b('/k'), value: b('v12') });
    await compactor.runOnce();
    assert.equal(store.compactRevision, head - 4);
    assert.deepEqual(records.filter((r) => r.level === 'warn'), []);
  } finally {
    compactor.stop();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a run the store refuses is logged with its target, not thrown', async () => {
  const { dir, store, records, compactor } = await setUp(0);
  try {
    for (let i = 0; i < 3; i++) await store.put({ key: b('/k'), value: b(`v${i}`) });
    const target = store.revision;
    await store.close(); // a closed store refuses writes: the compaction fails
    await compactor.runOnce();
    const warned = records.filter((r) => r.msg === 'automatic compaction failed');
    assert.equal(warned.length, 1);
    assert.equal(warned[0]!.fields.target, target);
    assert.match(String((warned[0]!.fields.error as Error).message), /shutting down/);
    assert.equal(store.compactRevision, 0);
  } finally {
    compactor.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

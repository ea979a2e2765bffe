/**
 * Child mode over a real Store on SQLite (mvcc/child-layer.ts): a claimed store takes rows at its parent's
 * revisions, refuses reused revisions, other parents and its own writes, keeps the claim across a restart,
 * and its automatic compaction leaves compaction to the parent.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { KeyRow } from '../../middleware/src/backends/backend.js';
import type { MovableBackend } from '../../middleware/src/backends/movable.js';
import { openBackend } from '../../middleware/src/backends/index.js';
import { AutoCompactor } from '../../middleware/src/mvcc/auto-compactor.js';
import { EtcdError } from '../../middleware/src/mvcc/errors.js';
import { Store } from '../../middleware/src/mvcc/store.js';
import { captureLogger, type LogRecord } from '../support/capture-logger.js';

const b = (s: string) => Buffer.from(s);
const row = (key: string, rev: number, create = rev, version = 1): KeyRow => ({
  key: b(key),
  value: b(`${key}@${rev}`),
  modRevision: rev,
  sub: 0,
  createRevision: create,
  prevRevision: create === rev ? 0 : create,
  version,
  lease: '7',
  deleted: false,
});
const childError = (pattern: RegExp) => (err: unknown) => err instanceof EtcdError && err.kind === 'child_layer' && pattern.test(err.message);

test('a claimed store takes its parent revisions, refuses everything else, and keeps the claim', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hk-child-layer-'));
  const open = () => Store.open({ backend: openBackend(`sqlite://${path.join(dir, 'state.db')}`) });
  let store = await open();
  try {
    await assert.rejects(store.child.write('p1', [row('/a', 50)], undefined), childError(/not a child layer yet/));
    await store.child.write('p1', [row('/a', 50)], 'p1');
    await store.child.write('p1', [row('/b', 61), row('/a', 60, 50, 2)], undefined);
    const a = await store.range({ key: b('/a') });
    assert.deepEqual([a.kvs[0]!.mod_revision, a.kvs[0]!.create_revision, a.kvs[0]!.version, a.kvs[0]!.lease].map(String), ['60', '50', '2', '7']);
    assert.equal(store.revision, 61);
    // a read above the child's newest revision is the state there (the parent's revisions run ahead)
    assert.equal((await store.range({ key: b('/b'), revision: 1000 })).kvs.length, 1);

    await assert.rejects(store.child.write('p1', [row('/c', 61)], undefined), childError(/revision 61 handed down by the parent is not above this child's newest revision 61/));
    await assert.rejects(store.child.write('p2', [row('/c', 70)], undefined), childError(/child layer of HariKube cluster p1/));
    await assert.rejects(store.child.write('p2', [], 'p2'), childError(/belongs to another HariKube cluster than p2/));
    await assert.rejects(store.put({ key: b('/c'), value: b('x') }), childError(/takes writes only from it/));
    await assert.rejects(store.leaseGrant('0', 60), childError(/takes writes only from it/));
    await assert.rejects(store.compact(55), childError(/takes writes only from it/));

    const records: LogRecord[] = [];
    const compactor = new AutoCompactor(store, { intervalMs: 60_000, minRetain: 0, log: captureLogger(records) });
    await compactor.runOnce();
    assert.equal(store.compactRevision, 0, 'a child is compacted by its parent only');
    assert.deepEqual(records, []);
    await store.child.compact('p1', 60, 100, Date.now() + 5000);
    assert.equal(store.compactRevision, 60);

    await store.close();
    store = await open();
    assert.equal(store.child.parent, 'p1', 'the claim survives a restart');
    await assert.rejects(store.child.write('p1', [row('/c', 61)], undefined), childError(/not above/), 'so does the newest revision');
    await store.child.write('p1', [row('/c', 62)], undefined);
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a store with data of its own cannot be claimed', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hk-child-layer-'));
  const store = await Store.open({ backend: openBackend(`sqlite://${path.join(dir, 'state.db')}`) });
  try {
    await store.put({ key: b('/mine'), value: b('x') });
    await assert.rejects(store.child.write('p1', [], 'p1'), childError(/already holds its own data \(up to revision 2 of its own revision space\)/));
    assert.equal(store.child.parent, undefined);
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a migration step runs for the parent only, and a copy at old revisions moves neither the revision nor the high-water mark', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hk-child-layer-'));
  const open = () => Store.open({ backend: openBackend(`sqlite://${path.join(dir, 'state.db')}`) });
  let store = await open();
  const moves = () => (store.backend as MovableBackend).moves;
  try {
    await assert.rejects(store.child.moveStep('p1', () => moves().copyIn([row('/old', 5)])), childError(/not a child layer/));
    await store.child.write('p1', [row('/a', 50)], 'p1');
    await assert.rejects(store.child.moveStep('p2', () => moves().copyIn([row('/old', 5)])), childError(/child layer of HariKube cluster p1/));
    assert.equal(await store.child.moveStep('p1', () => moves().copyIn([row('/old', 5), row('/old', 9, 5, 2), row('/x', 70)])), 3);
    assert.equal(await store.child.moveStep('p1', () => moves().copyIn([row('/old', 9, 5, 2)])), 0, 'a row already there is skipped');
    assert.equal(store.revision, 50, 'a copy moved the revision');
    const old = await store.range({ key: b('/old') });
    assert.deepEqual([old.kvs[0]!.mod_revision, old.kvs[0]!.create_revision, old.kvs[0]!.version].map(String), ['9', '5', '2']);
    // the copy did not raise the child's sequencer to 70: revision 60 (above its own newest) is still taken
    await store.child.write('p1', [row('/b', 60)], undefined);
    assert.equal(await store.child.moveStep('p1', () => moves().dropOut([b('/old'), b('/x')], 70)), 3);
    await store.close();
    store = await open();
    assert.equal(store.revision, 60, 'the high-water mark after a restart is that of the parent\'s writes');
    assert.equal((await store.range({ key: b('/old') })).kvs.length, 0);
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});

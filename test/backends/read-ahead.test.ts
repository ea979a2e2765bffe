/**
 * Rows read ahead with a commit (WriteTxn.readAheadAfterCommit) for the next write transaction, on a child
 * middleware (a real process: its Write answers them) and on a real etcd (read while the commit runs): the
 * next transaction reads those keys without asking, exactly as stored, and after anything else changed the
 * database in between (here a revert) it asks again.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { Backend, KeyRow, WriteTxn } from '../../middleware/src/backends/backend.js';
import { MiddlewareBackend } from '../../middleware/src/backends/middleware/middleware-backend.js';
import { META } from '../../middleware/src/backends/meta.js';
import { parseEndpoint, type EtcdEndpoint } from '../../middleware/src/topology/endpoint.js';
import { skipUnless } from '../support/env.js';
import { startEtcdBackend } from '../support/etcd-backend-rig.js';
import { Middleware } from '../support/middleware.js';

const k = (s: string) => Buffer.from(s);
const row = (key: string, rev: number): KeyRow => ({ key: k(key), value: k(`${key}@${rev}`), modRevision: rev, sub: 0, createRevision: rev, prevRevision: 0, version: 1, lease: '0', deleted: false });

type ReadingAhead = Backend & { latestMany(keys: Buffer[]): Promise<(KeyRow | undefined)[]> };

async function readAheadScenario(b: ReadingAhead): Promise<void> {
  const asked: string[][] = [];
  const latestMany = b.latestMany.bind(b);
  b.latestMany = async (keys) => (asked.push(keys.map(String)), latestMany(keys));

  const tx0 = await b.begin();
  await tx0.setMeta(META.owner, k('parent-under-test'));
  await tx0.insert([row('/c', 5)]);
  await tx0.commit();

  const tx1 = await b.begin();
  await tx1.insert([row('/a', 10)]);
  tx1.readAheadAfterCommit!([k('/a'), k('/c'), k('/d')]);
  await tx1.commit();

  asked.length = 0;
  const tx2 = await b.begin();
  await rollingBackOnFailure(tx2, async () => {
    await tx2.prefetch!([k('/a'), k('/c'), k('/d')]);
    assert.deepEqual(asked, [], 'the keys read ahead with the commit before are not asked for');
    assert.equal((await tx2.latest(k('/a')))?.value.toString(), '/a@10', 'a key the commit wrote');
    assert.equal((await tx2.latest(k('/c')))?.value.toString(), '/c@5', 'a key it did not write');
    assert.equal(await tx2.latest(k('/d')), undefined, 'a key that does not exist');
    await tx2.insert([row('/c', 11)]);
    tx2.readAheadAfterCommit!([k('/c')]);
  });
  await tx2.commit();

  // a change in between (it holds the write lock): what was read ahead no longer holds
  await b.revert(11, 11);
  asked.length = 0;
  const tx3 = await b.begin();
  await rollingBackOnFailure(tx3, async () => {
    await tx3.prefetch!([k('/c')]);
    assert.deepEqual(asked, [['/c']], 'after the revert the key is asked for again');
    assert.equal((await tx3.latest(k('/c')))?.value.toString(), '/c@5', 'and read as the revert left it');
  });
  await tx3.rollback();
}

/** Runs `fn`; when it fails, `tx` is rolled back first (an open transaction holds the backend's lock, and close waits for it). */
async function rollingBackOnFailure(tx: WriteTxn, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    await tx.rollback();
    throw err;
  }
}

test('a child middleware answers the next batch\'s keys with its Write', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'hk-read-ahead-'));
  const child = await Middleware.start({ endpoint: `sqlite://${path.join(dir, 'child.db')}`, compactInterval: '0' });
  const url = `http://${child.address}`;
  const b = new MiddlewareBackend(parseEndpoint(url) as EtcdEndpoint, url, { queryTimeoutMs: 5000, parentClusterId: async () => 'parent-under-test' });
  t.after(async () => {
    await b.close();
    await child.stop();
    await rm(dir, { recursive: true, force: true });
  });
  await b.open();
  await readAheadScenario(b);
});

test('an etcd backend reads the next batch\'s keys while its commit runs', { skip: await skipUnless('etcd') }, async (t) => {
  const rig = await startEtcdBackend();
  t.after(() => rig.stop());
  await readAheadScenario(rig.backend);
});

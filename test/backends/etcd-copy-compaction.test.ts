/**
 * Compaction of the rows an online migration copied into a real etcd (etcd-moves.ts): a copied row that the
 * key's own version supersedes goes, also when a client's write reached the etcd before the mover copied
 * the key's older history (then the etcd keeps its own newer version and the copy only adds history rows).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KeyRow } from '../../middleware/src/backends/backend.js';
import { prefixEnd } from '../support/bytes.js';
import { skipUnless } from '../support/env.js';
import { startEtcdBackend } from '../support/etcd-backend-rig.js';
import { EtcdClient } from '../support/grpc.js';

const k = (s: string) => Buffer.from(s);
const row = (key: string, rev: number, created: number, version: number): KeyRow => ({
  key: k(key),
  value: k(`${key}@${rev}`),
  modRevision: rev,
  sub: 0,
  createRevision: created,
  prevRevision: 0,
  version,
  lease: '0',
  deleted: false,
});

test('copied rows superseded by a write that reached the etcd first are compacted away', { skip: await skipUnless('etcd') }, async (t) => {
  const rig = await startEtcdBackend();
  t.after(() => rig.stop());
  const b = rig.backend;
  const commit = async (rows: KeyRow[]) => {
    const tx = await b.begin();
    await tx.insert(rows);
    await tx.commit();
  };
  const copiedRows = async () => {
    const c = new EtcdClient(rig.etcd.address);
    try {
      return Number((await c.range({ key: k('harikube/copied/'), range_end: prefixEnd('harikube/copied/'), count_only: true })).count);
    } finally {
      c.close();
    }
  };

  // the write routed here while the key still moves, then the mover copies the key's older history
  await commit([row('/k', 100, 10, 3)]);
  assert.ok((await b.moves.copyIn([row('/k', 10, 10, 1), row('/k', 20, 10, 2)])) > 0);
  assert.equal(await copiedRows(), 2);
  await commit([row('/other', 110, 110, 1)]);
  assert.equal((await b.latest(k('/k')))?.modRevision, 100, 'the etcd kept its own newer version');

  await b.compact(110);
  assert.equal(await copiedRows(), 0, 'no read at or above 110 needs a copied row of /k');
  const at = async (rev: number) => (await b.range({ start: k('/k'), revision: rev, limit: 0 })).map((r) => r.value.toString());
  assert.deepEqual(await at(110), ['/k@100']);
  assert.deepEqual(await at(Number.MAX_SAFE_INTEGER), ['/k@100']);
});

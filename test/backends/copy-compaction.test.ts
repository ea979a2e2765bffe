/**
 * A migration copy meets the target's compaction (every movable backend, through its own interfaces): the
 * mover copies a key's whole history again when it restarted between copy and drop, and the target may
 * have compacted part of that history meanwhile; the target may also have finished a compaction above the
 * copied revisions before the copy arrived. Neither may bring a deleted key back, and a later compaction of
 * the same running backend must still remove the copied rows it supersedes.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Backend, KeyRow } from '../../middleware/src/backends/backend.js';
import { EtcdBackend } from '../../middleware/src/backends/etcd/etcd-backend.js';
import { keyAfter } from '../../middleware/src/backends/key-range.js';
import { isMovable, type MovableBackend } from '../../middleware/src/backends/movable.js';
import { parseEndpoint, type EtcdEndpoint } from '../../middleware/src/topology/endpoint.js';
import { skipUnless } from '../support/env.js';
import { Etcd } from '../support/etcd.js';
import { STORES, type StoreKind } from './support/stores.js';

const FAR = () => Date.now() + 60_000;
const HEAD = Number.MAX_SAFE_INTEGER;
const K = Buffer.from('/registry/pods/ns/k');

/** Row `rev` of the key `K`: version `version`, superseding `prev` (0: created here). */
function row(rev: number, prev: number, version: number, deleted = false): KeyRow {
  return {
    key: K,
    value: Buffer.from(deleted ? '' : `v${rev}`),
    modRevision: rev,
    sub: 0,
    createRevision: 48,
    prevRevision: prev,
    version: deleted ? 0 : version,
    lease: '0',
    deleted,
  };
}

/** A backend on storage that outlives it: `reopen` closes it and opens a new one (fresh compaction progress). */
interface Opened {
  backend: MovableBackend;
  reopen(): Promise<void>;
  dispose(): Promise<void>;
}

async function movable(b: Backend): Promise<MovableBackend> {
  await b.open();
  assert.ok(isMovable(b), `${b.description} cannot take part in a migration`);
  return b;
}

async function openSql(kind: StoreKind): Promise<Opened> {
  const store = await STORES[kind]();
  const o: Opened = {
    backend: await movable(store.backend()),
    async reopen() {
      await o.backend.close();
      o.backend = await movable(store.backend());
    },
    async dispose() {
      await o.backend.close();
      await store.dispose();
    },
  };
  return o;
}

async function openEtcd(): Promise<Opened> {
  const etcd = await Etcd.start();
  const open = () => movable(new EtcdBackend(parseEndpoint(etcd.clientUrl) as EtcdEndpoint, etcd.clientUrl, { queryTimeoutMs: 5000 }));
  const o: Opened = {
    backend: await open(),
    async reopen() {
      await o.backend.close();
      o.backend = await open();
    },
    async dispose() {
      await o.backend.close();
      await etcd.destroy();
    },
  };
  return o;
}

async function commit(b: Backend, rows: KeyRow[]): Promise<void> {
  const tx = await b.begin();
  await tx.insert(rows);
  await tx.commit();
}

/** Another key's write at 90, below the compactions. */
function commitOther(b: Backend): Promise<void> {
  return commit(b, [{ ...row(90, 0, 1), key: Buffer.from('/registry/pods/ns/other'), createRevision: 90 }]);
}

/** The value of `K` read at `revision` ('-' when it reads nothing). */
async function valueAt(b: Backend, revision: number): Promise<string> {
  const rows = await b.range({ start: K, revision, limit: 0 });
  return rows[0]?.value.toString() ?? '-';
}

/** Every row of `K` the backend stores, as `rev` or `rev-` for a tombstone. */
async function stored(b: MovableBackend): Promise<string[]> {
  return (await b.moves.history(K, keyAfter(K), 1000)).filter((r) => r.key.equals(K)).map((r) => `${r.modRevision}${r.deleted ? '-' : ''}`);
}

const KINDS: { name: string; skip: () => Promise<string | false>; open: () => Promise<Opened> }[] = [
  { name: 'sqlite', skip: async () => false, open: () => openSql('sqlite') },
  { name: 'postgres', skip: () => skipUnless('postgres'), open: () => openSql('postgres') },
  { name: 'mariadb', skip: () => skipUnless('mysql'), open: () => openSql('mysql') },
  { name: 'etcd', skip: () => skipUnless('etcd'), open: () => openEtcd() },
];

for (const kind of KINDS) {
  describe(`copy into a compacted ${kind.name} target`, { skip: await kind.skip() }, () => {
    const history = [row(48, 0, 1), row(60, 48, 2), row(73, 60, 3)];

    test('a copy repeated across a compaction does not bring the key back after its delete', async () => {
      const o = await kind.open();
      try {
        await o.backend.moves.copyIn(history);
        // one batch of a compaction to 100 (two rows, a deadline already past: it removes 48), then the copy again
        await o.backend.compact(100, 2, 0);
        await o.backend.moves.copyIn(history);
        assert.equal((await o.backend.compact(100, 1000, FAR())).done, true);
        for (const rev of [100, 110, HEAD]) assert.equal(await valueAt(o.backend, rev), 'v73', `read at ${rev} after the copies`);

        await commit(o.backend, [row(120, 73, 0, true)]);
        assert.equal(await valueAt(o.backend, HEAD), '-', 'deleted at 120');
        assert.equal((await o.backend.compact(130, 1000, FAR())).done, true);
        for (const rev of [130, 140, HEAD]) assert.equal(await valueAt(o.backend, rev), '-', `read at ${rev} after compacting to 130`);
        assert.deepEqual(await stored(o.backend), [], 'nothing of the deleted key is left');

        // a fresh process walks the whole table: still nothing comes back
        await o.reopen();
        await o.backend.compact(130, 1000, FAR());
        for (const rev of [130, HEAD]) assert.equal(await valueAt(o.backend, rev), '-', `read at ${rev} after a full compaction`);
        assert.deepEqual(await stored(o.backend), []);
      } finally {
        await o.dispose();
      }
    });

    test('history copied below a finished compaction is compacted by the next one of the same backend', async () => {
      const o = await kind.open();
      try {
        await commitOther(o.backend);
        assert.equal((await o.backend.compact(100, 1000, FAR())).done, true);
        // the copy lands below the compaction that finished
        await o.backend.moves.copyIn(history);
        assert.equal((await o.backend.compact(110, 1000, FAR())).done, true);
        assert.deepEqual(await stored(o.backend), ['73'], 'the superseded copied rows are gone');
        assert.equal(await valueAt(o.backend, 110), 'v73');

        // the key lives on in the target, then is deleted: nothing older may show through
        await commit(o.backend, [row(200, 73, 4)]);
        assert.equal((await o.backend.compact(210, 1000, FAR())).done, true);
        await commit(o.backend, [row(250, 200, 0, true)]);
        assert.equal((await o.backend.compact(260, 1000, FAR())).done, true);
        for (const rev of [260, HEAD]) assert.equal(await valueAt(o.backend, rev), '-', `read at ${rev} after the delete was compacted`);
        assert.deepEqual(await stored(o.backend), []);
      } finally {
        await o.dispose();
      }
    });

    test('a deleted key copied again after compaction removed all of it is removed again by the next compaction', async () => {
      const o = await kind.open();
      try {
        const deletedHistory = [row(48, 0, 1), row(60, 48, 2), row(73, 60, 0, true)];
        // an etcd compacts nothing before its first revision of its own
        await commitOther(o.backend);
        await o.backend.moves.copyIn(deletedHistory);
        assert.equal((await o.backend.compact(100, 1000, FAR())).done, true);
        assert.deepEqual(await stored(o.backend), []);
        await o.backend.moves.copyIn(deletedHistory);
        for (const rev of [100, HEAD]) assert.equal(await valueAt(o.backend, rev), '-', `read at ${rev} after the second copy`);
        assert.equal((await o.backend.compact(110, 1000, FAR())).done, true);
        assert.deepEqual(await stored(o.backend), [], 'the copied rows are obsolete at 110');
        assert.equal(await valueAt(o.backend, HEAD), '-');
      } finally {
        await o.dispose();
      }
    });
  });
}

/**
 * Online migration in the real middleware process, over gRPC: a topology file edit (hot reload) routes
 * existing keys to another database, and the mover moves them while writers put and delete, watchers with
 * prev_kv follow from a revision before the change, and a list pinned before the change pages across it.
 * Afterwards: every acknowledged write reads back at its revision, the final state is the writers' state,
 * the watchers saw exactly the writers' events in order (a copy is not an event), the pinned list is the
 * state at its revision, the source database (read directly) holds none of the moved keys, a lease moved
 * with its keys, GET /migrations says done and harikube_migration_sources is 0.
 * (a) a namespace from SQLite (default backend) to PostgreSQL, (b) a custom-resource group from MariaDB
 * (default backend) to SQLite.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BackendRule } from '../../middleware/src/topology/schema.js';
import { b } from '../support/bytes.js';
import { skipUnless } from '../support/env.js';
import { EtcdClient } from '../support/grpc.js';
import { checkReadableAtRevision, keyNames, listAll, loadKeys, MigrationRig, pagedList, snapshots, watchFrom, type MigrationStatus } from '../support/migration-rig.js';
import { createScratchStore, type ScratchStore, type StoreKind } from '../support/scratch-store.js';
import { storedKeys } from '../support/stored-keys.js';
import { keyState, lines, replay, stateOf } from '../support/write-model.js';
import { Writers } from '../support/writers.js';

/** Keys per second the mover may move: low enough that the writers overlap several of its batches. */
const RATE = 200;

interface MoveCase {
  defaultKind: StoreKind;
  targetKind: StoreKind;
  rule(endpoint: string): BackendRule;
  /** Keys loaded before the change that the rule takes. */
  moving: string[];
  /** Keys loaded before the change that stay (some next to the rule's boundary). */
  staying: string[];
  /** Keys no one wrote before the change, in the rule's range: created while keys move. */
  created: string[];
  /** True for a key the rule routes (to check where each key is stored). */
  moves(key: string): boolean;
  /** The pinned paged list covers this prefix. */
  listPrefix: string;
}

/** Every `step`-th key of `keys` from `offset`. */
const every = (keys: string[], step: number, offset = 0) => keys.filter((_, i) => i % step === offset);

async function moveUnderLoad(c: MoveCase, stores: ScratchStore[]): Promise<void> {
  const def = await createScratchStore(c.defaultKind);
  stores.push(def);
  const target = await createScratchStore(c.targetKind);
  stores.push(target);
  const rig = await MigrationRig.start({ endpoint: def.endpoint, migrationRate: RATE });
  const client = new EtcdClient(rig.address);
  // background loads end with the test, whatever its outcome
  const background: (() => Promise<unknown>)[] = [];
  const aborted = new AbortController();
  try {
    // before the change: keys, a history (second versions, deletions whose tombstones move too), a lease
    await loadKeys(client, [...c.moving, ...c.staying], (k) => `init-${k}`);
    for (const k of c.moving.filter((_, i) => i % 10 === 3)) await client.put({ key: b(k), value: b(`v2-${k}`) });
    for (const k of c.moving.filter((_, i) => i % 25 === 11)) await client.deleteRange({ key: b(k) });
    const lease = await client.leaseGrant(3600);
    const leased = c.moving.slice(7, 10);
    for (const k of leased) await client.put({ key: b(k), value: b(`leased-${k}`), lease: lease.ID });

    const pinned = await listAll(client, '/registry/');
    const initial = stateOf(pinned.kvs);
    const pinnedList = (await listAll(client, c.listPrefix, pinned.revision)).kvs;
    const watcher = await watchFrom(client, '/registry/', pinned.revision + 1);

    const writers = new Writers({
      address: rig.address,
      lanes: [every(c.moving, 50), [...every(c.moving, 50, 25), ...c.created.slice(0, 10)], [...every(c.staying, 15), ...c.created.slice(10)]],
      maxWrites: 1500,
      maxMs: 120_000,
      pauseMs: 30,
    }).start();
    background.push(() => writers.stop());
    // the phase of the migration at each page of the pinned list, to know it paged across the move
    const pagePhases: string[] = [];
    const listing = pagedList(rig.address, c.listPrefix, pinned.revision, 50, async () => {
      const s = MigrationRig.source(await rig.status(), '');
      pagePhases.push(s ? `${s.phase} ${s.keysMoved}/${s.keysTotal}` : 'before');
      await sleep(150);
    }, { signal: aborted.signal });
    background.push(() => listing.catch(() => undefined));

    await sleep(300);
    rig.writeTopology([c.rule(target.endpoint)]);
    const lists = snapshots(rig.address, '/registry/', 300);
    background.push(() => lists.stop().catch(() => undefined));
    // while keys move: a second watch from before the change, opened then
    const partly = await rig.waitStatus('keys partly moved', (s) => {
      const src = MigrationRig.source(s, '');
      return src && src.phase === 'moving' && src.keysMoved > 0 && src.keysMoved < src.keysTotal ? Date.now() : undefined;
    });
    const lateWatcher = await watchFrom(new EtcdClient(rig.address), '/registry/', pinned.revision + 1);
    const done: MigrationStatus = await rig.waitStatus('the migration to finish', (s) => (!s.active && MigrationRig.source(s, '')?.phase === 'done' ? s : undefined));
    const doneAt = Date.now();
    await writers.stop();
    const paged = await listing;
    const taken = await lists.stop();

    // the test did what it says: writes and pages while some keys were moved and others not yet
    assert.deepEqual(writers.errors, [], 'writes failed while keys moved');
    assert.deepEqual(writers.anomalies, [], 'answers to the writers contradicted their own writes');
    assert.ok(writers.attempts.some((a) => a.ackedAt! > partly && a.ackedAt! < doneAt), 'no write was acknowledged while keys moved: lower RATE');
    assert.ok(pagePhases.some((p) => p.startsWith('moving ') && !p.startsWith('moving 0/')), `the pinned list did not page while keys moved (pages: ${pagePhases.join(', ')})`);

    // the watchers saw exactly the writers' events, in order, with prev_kv; the final state is theirs
    const lastRevision = Math.max(...writers.acked.map((a) => a.revision ?? 0));
    const events = await watcher.until(lastRevision);
    const final = replay(initial, events, writers.attempts, 'watch from before the change');
    const now = await listAll(client, '/registry/');
    assert.deepEqual(lines(stateOf(now.kvs)), lines(final), 'the state after the migration is not the writers\' state');
    // every list taken while keys moved was the writers' state at its revision
    for (const snap of taken) {
      const at = replay(initial, events, writers.attempts, `history to the list at ${snap.revision}`, snap.revision);
      assert.deepEqual(lines(stateOf(snap.kvs)), lines(at), `the list at revision ${snap.revision}, while keys moved, is not the writers' state then`);
    }
    assert.ok(taken.length > 5, `only ${taken.length} lists were taken while keys moved`);
    const late = await lateWatcher.until(lastRevision);
    replay(initial, late, writers.attempts, 'watch opened while keys moved');
    const summary = (es: typeof events) => es.map((e) => `${e.kv.mod_revision} ${e.type} ${e.kv.key.toString()} prev ${e.prev_kv?.mod_revision ?? '-'}`);
    assert.deepEqual(summary(late), summary(events));

    // the list pinned before the change is the state at its revision, page after page
    assert.deepEqual(paged.kvs.map((kv) => `${kv.key.toString()} ${JSON.stringify(keyState(kv))}`), pinnedList.map((kv) => `${kv.key.toString()} ${JSON.stringify(keyState(kv))}`));
    await checkReadableAtRevision(client, writers.attempts);

    // where the keys are: none of the moved ones left in the source, the moved history in the target
    const since = MigrationRig.source(done, '')!.since;
    const inSource = await storedKeys(def.endpoint);
    assert.deepEqual(inSource.filter((k) => c.moves(k)), [], 'moved keys left in the source database');
    assert.deepEqual(c.staying.filter((k) => !inSource.includes(k)), [], 'keys that stay were taken out of the source database');
    const inTarget = new Set(await storedKeys(target.endpoint));
    assert.deepEqual(c.moving.filter((k) => !inTarget.has(k)), [], 'moved keys (tombstones included) missing from the target database');
    assert.deepEqual([...inTarget].filter((k) => !c.moves(k)), [], 'keys the rule does not route are in the target database');

    // GET /migrations: done, every key that was in the source at the change counted once; the gauge is 0
    const wasInSource = new Set([...c.moving, ...writers.acked.filter((a) => c.moves(a.key) && a.revision !== undefined && a.revision < since).map((a) => a.key)]);
    const src = MigrationRig.source(done, '')!;
    assert.deepEqual([src.phase, src.keysMoved, src.keysTotal, src.errors], ['done', wasInSource.size, wasInSource.size, 0], JSON.stringify(src));
    assert.deepEqual(done.sources.map((s) => s.source), ['']);
    assert.equal(await rig.metric('harikube_migration_sources'), 0);

    // the lease moved with its keys: it still lists them, and revoking it deletes them where they are now
    const ttl = await client.leaseTimeToLive(lease.ID, true);
    assert.deepEqual(ttl.keys.map((k) => k.toString()).sort(), leased);
    const revoked = Number((await client.leaseRevoke(lease.ID)).header.revision);
    for (const k of leased) assert.equal((await client.range({ key: b(k) })).kvs.length, 0, `${k} outlived its revoked lease`);
    const onRevoke = (await watcher.until(revoked)).filter((e) => Number(e.kv.mod_revision) === revoked);
    assert.deepEqual(onRevoke.map((e) => [e.type, e.kv.key.toString(), e.prev_kv?.value.toString()]).sort(), leased.map((k) => ['Delete', k, `leased-${k}`]));
    watcher.close();
    lateWatcher.close();
  } finally {
    aborted.abort();
    for (const stop of background) await stop();
    client.close();
    await rig.stop();
  }
}

describe('online migration in the real process, under writers, watchers and a pinned list', async () => {
  const stores: ScratchStore[] = [];
  after(async () => {
    for (const s of stores) await s.dispose().catch(() => undefined);
  });

  it('(a) moves a namespace from SQLite to PostgreSQL', { skip: await skipUnless('postgres') }, async () => {
    const moving = [...keyNames('/registry/configmaps/team-a/c', 100, 3), ...keyNames('/registry/pods/team-a/p', 2400)];
    const staying = ['/registry/namespaces/team-a', ...keyNames('/registry/pods/team-ab/p', 50, 2), ...keyNames('/registry/pods/team-b/p', 300, 3)];
    await moveUnderLoad(
      {
        defaultKind: 'sqlite',
        targetKind: 'postgres',
        rule: (endpoint) => ({ name: 'team-a', endpoint, namespace: { namespace: 'team-a' } }),
        moving,
        staying,
        created: keyNames('/registry/pods/team-a/new-', 20, 2),
        moves: (k) => /^\/registry\/[^/]+\/team-a\//.test(k),
        listPrefix: '/registry/pods/',
      },
      stores,
    );
  });

  it('(b) moves a custom-resource group from MariaDB to SQLite', { skip: await skipUnless('mysql') }, async () => {
    const moving = [...keyNames('/registry/stable.example.com/pants/ns1/p', 200, 3), ...keyNames('/registry/stable.example.com/shirts/default/s', 1800)];
    const staying = [
      '/registry/apiextensions.k8s.io/customresourcedefinitions/shirts.stable.example.com',
      ...keyNames('/registry/configmaps/default/c', 200, 3),
      ...keyNames('/registry/stable.example.comx/widgets/default/w', 100, 3),
    ];
    await moveUnderLoad(
      {
        defaultKind: 'mysql',
        targetKind: 'sqlite',
        rule: (endpoint) => ({ name: 'shirts', endpoint, customresource: { group: 'stable.example.com' } }),
        moving,
        staying,
        created: keyNames('/registry/stable.example.com/shirts/other/s', 20, 2),
        moves: (k) => k.startsWith('/registry/stable.example.com/'),
        listPrefix: '/registry/stable.example.com',
      },
      stores,
    );
  });
});

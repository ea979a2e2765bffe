/**
 * Online migration into and out of a real etcd rule backend, in the real middleware process: a topology
 * file edit routes a namespace from the default SQLite backend into the etcd, then (the etcd's rule taking
 * another namespace) back out of it. Each move runs under writers and a list pinned before the change, and
 * the process is killed (kill -9) and restarted while keys move. Afterwards: a watch from before the
 * change, caught up from storage across both backends, is exactly the writers' events (a copy or a drop is
 * not an event), the state is the writers' state, every acknowledged write reads back at its revision, the
 * pinned list is unchanged (revisions, create revisions, versions), the etcd (read directly) holds the keys
 * routed to it and none of those moved out, and `harikube migrate verify` finds nothing out of place.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { BackendRule } from '../../middleware/src/topology/schema.js';
import { b, prefixEnd } from '../support/bytes.js';
import { skipUnless } from '../support/env.js';
import { Etcd } from '../support/etcd.js';
import { EtcdClient } from '../support/grpc.js';
import { REPO_ROOT } from '../support/middleware.js';
import { CLI_ARGS } from '../support/cli.js';
import { checkReadableAtRevision, keyNames, listAll, loadKeys, MigrationRig, pagedList, watchFrom } from '../support/migration-rig.js';
import { createScratchStore, type ScratchStore } from '../support/scratch-store.js';
import { storedKeys } from '../support/stored-keys.js';
import { waitUntil } from '../support/wait.js';
import { keyState, lines, replay, stateOf } from '../support/write-model.js';
import { Writers } from '../support/writers.js';

/** Keys per second: low enough that the move lasts seconds, so writes and the kill land while keys move. */
const RATE = 300;
const run = promisify(execFile);

const skip = await skipUnless('etcd');

describe('online migration into and out of a real etcd, with kill -9 while keys move', { skip }, () => {
  let etcd: Etcd;
  let def: ScratchStore;
  let rig: MigrationRig;

  before(async () => {
    etcd = await Etcd.start();
    def = await createScratchStore('sqlite');
    rig = await MigrationRig.start({ endpoint: def.endpoint, migrationRate: RATE });
  });

  after(async () => {
    await rig?.stop();
    await etcd?.destroy();
    await def?.dispose();
  });

  /** Keys the etcd holds under `prefix`, asked directly (internal keys excluded by the prefix). */
  async function inEtcd(prefix: string): Promise<string[]> {
    const direct = new EtcdClient(etcd.address);
    try {
      return (await direct.range({ key: b(prefix), range_end: prefixEnd(prefix), keys_only: true })).kvs.map((kv) => kv.key.toString());
    } finally {
      direct.close();
    }
  }

  /**
   * Loads `moving` (with a history: second versions, deletes), changes the topology to `rules`, kills the
   * middleware once a page of keys moved and restarts it, waits for the move to end, and checks it all.
   */
  async function move(t: TestContext, rules: BackendRule[], moving: string[], prefix: string, source: string): Promise<void> {
    const client = new EtcdClient(rig.address);
    const aborted = new AbortController();
    let writers: Writers | undefined;
    let listing: Promise<unknown> | undefined;
    try {
      await loadKeys(client, moving, (k) => `init-${k}`);
      for (const k of moving.filter((_, i) => i % 10 === 3)) await client.put({ key: b(k), value: b(`v2-${k}`) });
      for (const k of moving.filter((_, i) => i % 25 === 11)) await client.deleteRange({ key: b(k) });
      // a lease on two keys no writer touches: it moves with them
      const lease = await client.leaseGrant(3600);
      const leased = [moving[7]!, moving[8]!];
      for (const k of leased) await client.put({ key: b(k), value: b(`leased-${k}`), lease: lease.ID });
      const snapshot = await listAll(client, prefix);
      const initial = stateOf(snapshot.kvs);
      const pinned = snapshot.kvs.map((kv) => `${kv.key.toString()} ${JSON.stringify(keyState(kv))} create=${kv.create_revision} version=${kv.version}`);

      writers = new Writers({
        address: rig.address,
        lanes: [moving.filter((_, i) => i % 40 === 0), [...moving.filter((_, i) => i % 40 === 20), ...keyNames(`${prefix}new-`, 10, 2)]],
        maxWrites: 1500,
        maxMs: 180_000,
        pauseMs: 40,
      }).start();
      const paging = pagedList(rig.address, prefix, snapshot.revision, 50, () => sleep(100), { retryMs: 180_000, signal: aborted.signal });
      listing = paging.catch(() => undefined);

      rig.writeTopology(rules);
      const changed = Date.now();
      await rig.waitStatus('a page of keys moved', (s) => {
        const src = MigrationRig.source(s, source);
        return src?.phase === 'moving' && src.keysMoved > 0 && src.keysMoved < src.keysTotal ? true : undefined;
      });
      await rig.middleware.kill9();
      await rig.middleware.restart();
      assert.ok(MigrationRig.source(await rig.status(), source), `after the restart, GET /migrations does not list the source "${source}"`);
      await rig.waitStatus('the migration to finish after the restart', (s) => (!s.active && MigrationRig.source(s, source)?.phase === 'done' ? s : undefined));
      const done = Date.now();
      await writers.stop();
      const paged = (await paging).kvs.map((kv) => `${kv.key.toString()} ${JSON.stringify(keyState(kv))} create=${kv.create_revision} version=${kv.version}`);

      assert.deepEqual(writers.anomalies, [], 'answers to the writers contradicted their own writes');
      assert.ok(writers.acked.filter((a) => a.ackedAt! > changed && a.ackedAt! < done).length >= 5, `fewer than 5 writes were acknowledged while keys moved: lower RATE (${writers.errors.join('; ')})`);
      // grpc-js shares connections between clients: the one refused during the restart may still be backing off
      await waitUntil('the restarted middleware to answer', () => client.range({ key: b(prefix) }).then(() => true), { timeoutMs: 30_000, intervalMs: 200 });
      const now = await listAll(client, prefix);
      const keys = now.kvs.map((kv) => kv.key.toString());
      assert.deepEqual(keys, [...new Set(keys)].sort(), 'a key is listed twice or out of order');
      const last = Math.max(snapshot.revision + 1, ...writers.acked.map((a) => a.revision ?? 0));
      // caught up from storage (the restart emptied the event ring): exactly the writers' events, no copy, no drop
      const watch = await watchFrom(client, prefix, snapshot.revision + 1);
      const events = await watch.until(last);
      watch.close();
      const final = replay(initial, events, writers.attempts, 'watch from before the change, after the kill');
      assert.deepEqual(lines(stateOf(now.kvs)), lines(final), 'the state after the move is not the writers\' state');
      await checkReadableAtRevision(client, writers.attempts);
      assert.deepEqual(paged, pinned, 'the list pinned before the change changed');
      // read again after the move: the state at the pinned revision, field by field
      const again = await listAll(client, prefix, snapshot.revision);
      assert.deepEqual(again.kvs.map((kv) => `${kv.key.toString()} ${JSON.stringify(keyState(kv))} create=${kv.create_revision} version=${kv.version}`), pinned);
      // the lease (rebuilt from the backends at the restart) still lists its keys, and revoking it deletes them where they are now
      assert.deepEqual((await client.leaseTimeToLive(lease.ID, true)).keys.map((k) => k.toString()).sort(), leased);
      await client.leaseRevoke(lease.ID);
      for (const k of leased) assert.equal((await client.range({ key: b(k) })).kvs.length, 0, `${k} outlived its revoked lease`);
      t.diagnostic(`${writers.attempts.length} writes, ${writers.acked.length} acknowledged, ${events.length} events, ${paged.length} keys paged; first failures: ${writers.errors.join('; ')}`);
    } finally {
      aborted.abort();
      await writers?.stop();
      await listing;
      client.close();
    }
  }

  async function verify(): Promise<void> {
    const cli = [process.execPath, ...CLI_ARGS];
    const { stdout } = await run(cli[0]!, [...cli.slice(1), 'migrate', 'verify', '--endpoint', def.endpoint], { cwd: REPO_ROOT, timeout: 120_000 }).catch((err: { stdout?: string; stderr?: string; message: string }) => {
      throw new Error(`harikube migrate verify failed: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
    });
    assert.match(stdout, /^OK/m, stdout);
  }

  const teamA = keyNames('/registry/configmaps/team-a/c', 1500);
  const rule = (namespace: string): BackendRule => ({ name: 'etcd', endpoint: etcd.clientUrl, namespace: { namespace } });

  it('moves a namespace from SQLite into the etcd', async (t) => {
    await move(t, [rule('team-a')], teamA, '/registry/configmaps/team-a/', '');
    assert.deepEqual((await storedKeys(def.endpoint)).filter((k) => k.startsWith('/registry/configmaps/team-a/')), [], 'moved keys left in SQLite');
    const held = await inEtcd('/registry/configmaps/team-a/');
    const live = (await listAll(new EtcdClient(rig.address), '/registry/configmaps/team-a/')).kvs.map((kv) => kv.key.toString());
    assert.deepEqual(held, live, 'the etcd does not hold exactly the live keys of the namespace');
    await verify();
  });

  it('moves it back out of the etcd into SQLite', async (t) => {
    const more = keyNames('/registry/configmaps/team-a/d', 1000);
    await move(t, [rule('team-z')], more, '/registry/configmaps/team-a/', 'etcd');
    assert.deepEqual(await inEtcd('/registry/configmaps/team-a/'), [], 'moved keys left in the etcd');
    // nor their copied history or tombstones, kept beside the keys (layout.ts: harikube/<kind>/<key in hex>...)
    const hex = Buffer.from('/registry/configmaps/team-a/').toString('hex');
    for (const side of ['copied', 'deleted']) assert.deepEqual(await inEtcd(`harikube/${side}/${hex}`), [], `the etcd still holds harikube/${side}/ entries of moved keys`);
    const stored = new Set(await storedKeys(def.endpoint));
    assert.deepEqual([...teamA, ...more].filter((k) => !stored.has(k)), [], 'keys missing from SQLite');
    await verify();
  });
});

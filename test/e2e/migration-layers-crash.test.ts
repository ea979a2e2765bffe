/**
 * Crash safety of online migration into and out of a child middleware (a layer), real processes over gRPC:
 * the parent's default backend is SQLite, its rule "layer" routes a namespace (team-b) to a child middleware
 * over SQLite of its own. A topology edit routes team-a to the child too: team-a moves into the child, and
 * while keys move the PARENT is killed (kill -9) and restarted (its migration resumes from the meta store),
 * then the CHILD is killed and restarted on the same database (the parent's mover fails against it, retries
 * and completes). A second edit moves team-a back out of the child, with the same two kills (the child being
 * the source this time). Writers write team-a, team-b (always in the child) and a namespace that never moves through all of
 * it, and a watcher of the parent follows, resumed after each parent restart from the last revision it saw.
 * Afterwards: the watcher saw every acknowledged write once, in revision order, and nothing no client wrote
 * (a copy or a drop is not an event); the state is the writers' (no key lost, none twice, none back after
 * its delete); every acknowledged write reads back at its revision; no key is in both databases (read
 * directly); and `harikube migrate verify` finds every key in place.
 */
import assert from 'node:assert/strict';
import { after, describe, it, type TestContext } from 'node:test';
import type { BackendRule } from '../../middleware/src/topology/schema.js';
import { b } from '../support/bytes.js';
import type { Event } from '../support/etcd-types.js';
import { EtcdClient } from '../support/grpc.js';
import { kubeCreate } from '../support/kube-txn.js';
import { harikube } from '../support/harikube-cli.js';
import { Middleware } from '../support/middleware.js';
import { checkReadableAtRevision, keyNames, listAll, loadKeys, MigrationRig, watchFrom, type SourceStatus } from '../support/migration-rig.js';
import { createScratchStore, type ScratchStore } from '../support/scratch-store.js';
import { storedKeys, storedRevisions } from '../support/stored-keys.js';
import { waitUntil } from '../support/wait.js';
import { lines, replay, stateOf } from '../support/write-model.js';
import { Writers } from '../support/writers.js';

/**
 * Keys per second the mover may move: under the limit a batch is a tenth of a second's worth (10 keys), so
 * 400 keys take about 4 s of moving and a kill lands between batches of a move under way.
 */
const RATE = 100;
/**
 * A kill is due once this many keys moved (since the parent's last start: a restarted mover counts what is
 * left) and at least LEFT_AT_KILL are still to move, so it lands in the middle of the move whatever the
 * machine's pace: 400 keys, the parent killed at 100+, then the child at 100+ of the 300 or so left.
 */
const MOVED_AT_KILL = 100;
const LEFT_AT_KILL = 100;

const inTeam = (team: string) => (k: string) => k.includes(`/${team}/`);
const every = (keys: string[], step: number, offset = 0) => keys.filter((_, i) => i % step === offset);

/**
 * A watch of the parent from a revision, resumed after each parent restart from the revision after the last
 * event it delivered (each writer's write is one key at one revision, so no revision is split between the
 * old stream and the new one). `events()` is everything delivered, across the restarts, in arrival order.
 */
class ResumedWatch {
  private readonly done: Event[] = [];
  private client?: EtcdClient;
  private watch?: Awaited<ReturnType<typeof watchFrom>>;

  private constructor(private next: number) {}

  static async start(address: string, from: number): Promise<ResumedWatch> {
    const w = new ResumedWatch(from);
    await w.resume(address);
    return w;
  }

  events(): Event[] {
    return [...this.done, ...(this.watch?.events() ?? [])];
  }

  /** Takes what the broken stream delivered and watches again from the revision after it. */
  async resume(address: string): Promise<void> {
    if (this.watch) {
      const got = this.watch.events();
      this.done.push(...got);
      if (got.length > 0) this.next = Number(got[got.length - 1]!.kv.mod_revision) + 1;
      this.close();
    }
    this.client = new EtcdClient(address);
    // grpc-js shares connections between clients: the one refused during the restart may still be backing off
    await waitUntil('the parent to answer over gRPC', () => this.client!.range({ key: b('/registry/') }).then(() => true), { timeoutMs: 30_000, intervalMs: 200 });
    this.watch = await watchFrom(this.client, '/registry/', this.next);
  }

  /** Every event, once the current stream delivered one at or above `revision`. */
  async until(revision: number): Promise<Event[]> {
    await this.watch!.until(revision);
    return this.events();
  }

  close(): void {
    this.watch?.close();
    this.client?.close();
    this.watch = undefined;
    this.client = undefined;
  }
}

describe('online migration into and out of a child middleware survives kill -9 of either', () => {
  const stores: ScratchStore[] = [];
  after(async () => {
    for (const s of stores) await s.dispose().catch(() => undefined);
  });

  it('moves a namespace into the child and back out, killing the parent and the child mid-move each way', async (t) => {
    const [def, childStore] = await Promise.all([createScratchStore('sqlite'), createScratchStore('sqlite')]);
    stores.push(def!, childStore!);
    const child = await Middleware.start({ endpoint: childStore!.endpoint, compactInterval: '0' });
    const layer = (teams: string): BackendRule => ({ name: 'layer', endpoint: `http://${child.address}`, regexp: { key: `^/registry/[^/]+/team-[${teams}]/` } });
    let rig: MigrationRig | undefined;
    let writers: Writers | undefined;
    let watch: ResumedWatch | undefined;
    let client: EtcdClient | undefined;
    try {
      rig = await MigrationRig.start({ endpoint: def!.endpoint, migrationRate: RATE, rules: [layer('b')], extraArgs: ['--query-timeout', '5s'] });
      client = new EtcdClient(rig.address);
      const teamA = keyNames('/registry/pods/team-a/p', 400, 3);
      const teamB = keyNames('/registry/pods/team-b/p', 30, 2);
      const staying = keyNames('/registry/pods/team-c/p', 30, 2);
      // team-b's writes claim the child (a child takes copies only from the parent that claimed it)
      await loadKeys(client, [...teamA, ...teamB, ...staying], (k) => `init-${k}`);
      // a history that moves too: second versions and deletes (tombstones)
      for (const k of every(teamA, 10, 3)) await client.put({ key: b(k), value: b(`v2-${k}`) });
      for (const k of every(teamA, 25, 11)) await client.deleteRange({ key: b(k) });
      const pinned = await listAll(client, '/registry/');
      const initial = stateOf(pinned.kvs);
      watch = await ResumedWatch.start(rig.address, pinned.revision + 1);
      // one Writers throughout: its put values are unique within it, which the history check relies on
      writers = new Writers({
        address: rig.address,
        lanes: [every(teamA, 20, 0), every(teamA, 20, 10), [...every(teamB, 3), ...every(staying, 3)]],
        maxWrites: 3000,
        maxMs: 150_000,
        pauseMs: 60,
      }).start();

      const crashes = { t, rig, child, watch };
      rig.writeTopology([layer('ab')]);
      await deleteThenCreateUnmoved(rig, writers, teamA[teamA.length - 1]!, def!.endpoint);
      await killParentMidMove(crashes, '', 'into the child');
      await killChildMidMove(crashes, '', 'into the child');
      const into = await finished(rig, '');
      t.diagnostic(`into the child: ${JSON.stringify(into)}`);
      assert.deepEqual((await storedKeys(def!.endpoint)).filter(inTeam('team-a')), [], 'team-a keys (tombstones included) left in the default SQLite after the move into the child');
      const childHolds = new Set(await storedKeys(childStore!.endpoint));
      assert.deepEqual(teamA.filter((k) => !childHolds.has(k)), [], 'team-a keys (tombstones included) missing from the child after the move into it');

      rig.writeTopology([layer('b')]);
      await killParentMidMove(crashes, 'layer', 'out of the child');
      await killChildMidMove(crashes, 'layer', 'out of the child');
      const out = await finished(rig, 'layer');
      t.diagnostic(`out of the child: ${JSON.stringify(out)}`);
      await writers.stop();

      assert.deepEqual(writers.anomalies, [], 'answers to the writers contradicted their own writes');
      // the watcher across both parent restarts: every acknowledged write once, in revision order, no copy
      const last = Math.max(pinned.revision + 1, ...writers.acked.map((a) => a.revision ?? 0));
      const events = await watch.until(last);
      const final = replay(initial, events, writers.attempts, 'watch of the parent, resumed after each restart');
      // grpc-js shares connections between clients: the one refused during a restart may still be backing off
      await waitUntil('the parent to answer over gRPC', () => client!.range({ key: b('/registry/') }).then(() => true), { timeoutMs: 30_000, intervalMs: 200 });
      const now = await listAll(client, '/registry/');
      const keys = now.kvs.map((kv) => kv.key.toString());
      assert.deepEqual(keys, [...new Set(keys)].sort(), 'a key is listed twice or out of order');
      assert.deepEqual(lines(stateOf(now.kvs)), lines(final), 'the state after the crashes is not the writers\' state');
      // a key whose last write was an acknowledged delete stays deleted (not brought back by a copy)
      const lastWrite = new Map(writers.attempts.map((a) => [a.key, a]));
      const deleted = [...lastWrite.values()].filter((a) => a.op === 'delete' && a.acked && a.revision !== undefined).map((a) => a.key);
      assert.deepEqual(deleted.filter((k) => keys.includes(k)), [], 'keys came back after their delete');
      await checkReadableAtRevision(client, writers.attempts);

      // each key in one database (tombstones and old versions included), read directly
      const inDefault = await storedKeys(def!.endpoint);
      const inChild = await storedKeys(childStore!.endpoint);
      const both = inDefault.filter((k) => inChild.includes(k));
      assert.deepEqual(both, [], 'keys in both the default SQLite and the child\'s');
      assert.deepEqual(inChild.filter((k) => !inTeam('team-b')(k)), [], 'keys other than team-b in the child');
      assert.deepEqual(teamA.filter((k) => !inDefault.includes(k)), [], 'team-a keys (tombstones included) missing from the default SQLite');

      const verify = await harikube(['migrate', 'verify', '--endpoint', def!.endpoint]);
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);
      assert.match(verify.stdout, /rule "layer" \(http:\/\/[^)]+\): \d+ keys, all in place/);
      assert.doesNotMatch(verify.stdout, /NOT OK/);
      t.diagnostic(`${writers.attempts.length} writes attempted, ${writers.acked.length} acknowledged, ${events.length} events; first failures: ${writers.errors.join('; ')}`);
    } finally {
      await writers?.stop();
      watch?.close();
      client?.close();
      await rig?.stop();
      await child.stop();
    }
  });
});

interface Crashes {
  t: TestContext;
  rig: MigrationRig;
  child: Middleware;
  watch: ResumedWatch;
}

/**
 * The first writes to a key the mover has not reached yet (the last one of the namespace: keys move in key
 * order), now routed to the child while its rows are still in the default SQLite: a delete (its tombstone
 * goes to the child), then the create kube-apiserver sends (compare mod_revision = 0). The tombstone in
 * the child is the key's newest row: the create must succeed, as a new key (version 1). A child whose write
 * transaction hid its tombstones let the older live row in the source win: the create was refused. This
 * test is one more client: its writes go into the writers' record, for the history check.
 */
async function deleteThenCreateUnmoved(rig: MigrationRig, writers: Writers, key: string, source: string): Promise<void> {
  await rig.waitStatus('the move into the child to begin', (s) => (MigrationRig.source(s, '')?.phase === 'moving' ? true : undefined), 60_000, 20);
  const client = new EtcdClient(rig.address);
  try {
    const del = await client.deleteRange({ key: b(key) });
    assert.equal(Number(del.deleted), 1, `${key}: the delete found nothing`);
    writers.attempts.push({ key, op: 'delete', acked: true, revision: Number(del.header.revision), ackedAt: Date.now() });
    const value = `probe-create-${key}`;
    const created = await client.txn(kubeCreate(b(key), b(value)));
    assert.equal(created.succeeded, true, `${key}: the create after its delete was refused (the deleted key read as live)`);
    const revision = Number(created.header.revision);
    writers.attempts.push({ key, op: 'put', value, acked: true, revision, ackedAt: Date.now() });
    const kv = (await client.range({ key: b(key) })).kvs[0];
    assert.deepEqual([Number(kv?.create_revision), Number(kv?.version)], [revision, 1], `${key}: created again after its delete, it is not a new key`);
    assert.ok((await storedRevisions(source, key)).length > 0, `${key} moved before the test wrote it: the check did not run on a key still in the source`);
  } finally {
    client.close();
  }
}

/** Waits until `source` is moving with MOVED_AT_KILL keys moved (since the last parent start) and LEFT_AT_KILL still to move. */
function midMove(rig: MigrationRig, source: string, what: string): Promise<SourceStatus> {
  return rig.waitStatus(`keys of "${source}" moving ${what}, ${MOVED_AT_KILL}+ moved, ${LEFT_AT_KILL}+ left`, (s) => {
    const src = MigrationRig.source(s, source);
    return src?.phase === 'moving' && src.keysMoved >= MOVED_AT_KILL && src.keysTotal - src.keysMoved >= LEFT_AT_KILL ? src : undefined;
  }, 120_000, 20);
}

/** kill -9 of the parent mid-move, restarted with the same flags: the migration is there again (meta "migrations"). */
async function killParentMidMove(c: Crashes, source: string, what: string): Promise<void> {
  const at = await midMove(c.rig, source, what);
  await c.rig.middleware.kill9();
  await c.rig.middleware.restart();
  await c.watch.resume(c.rig.address);
  const again = MigrationRig.source(await c.rig.status(), source);
  assert.ok(again && again.phase !== 'done', `after the parent's restart, GET /migrations does not list the source "${source}" as migrating: ${JSON.stringify(again)}`);
  c.t.diagnostic(`parent killed ${what} at ${at.keysMoved}/${at.keysTotal} keys; restarted`);
}

/**
 * kill -9 of the child mid-move; once the parent's mover failed a step against it, the child is restarted on
 * the same database and the mover retries.
 */
async function killChildMidMove(c: Crashes, source: string, what: string): Promise<void> {
  const at = await midMove(c.rig, source, what);
  await c.child.kill9();
  const failed = await c.rig.waitStatus('the parent\'s mover to fail a step against the killed child', (s) => {
    const src = MigrationRig.source(s, source);
    return src && src.errors > at.errors ? src : undefined;
  }, 60_000);
  assert.notEqual(failed.phase, 'done', 'the move finished while the child was down');
  await c.child.restart();
  c.t.diagnostic(`child killed ${what} at ${at.keysMoved}/${at.keysTotal} keys; the mover failed (${failed.lastError}); child restarted`);
}

/** Waits for the migration out of `source` to end; it moved keys and retried after the child's kill. */
async function finished(rig: MigrationRig, source: string): Promise<SourceStatus> {
  const done = await rig.waitStatus(`the migration out of "${source}" to finish`, (s) => (!s.active && MigrationRig.source(s, source)?.phase === 'done' ? MigrationRig.source(s, source) : undefined));
  assert.deepEqual(done.targets, [source === '' ? 'layer' : ''], JSON.stringify(done));
  assert.ok(done.errors > 0, `the mover never failed a step while the child was down: ${JSON.stringify(done)}`);
  return done;
}


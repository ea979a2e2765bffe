/**
 * Crash safety of online migration in the real process: kill -9 in each phase of a migration (counting,
 * moving - between a batch's copy and its drop, in the mover's rate-limit pause, in the first batch after a
 * restart - and verifying), each time restarted with the same flags, while writers keep writing through the
 * crashes and a list pinned before the change keeps paging. GET /migrations tells the test the phase; a
 * TCP proxy in front of the source database (PostgreSQL) slows its answers so that the short phases last,
 * and freezes it so the process is killed in the phase it was seen in. After each restart the migration is
 * there again (meta "migrations") and a watch from before the change, caught up from storage across both
 * databases, is exactly the writers' history; at the end no key is lost, none is listed twice, none came
 * back after its delete, and the source holds none of the moved keys.
 * Also: kill -9 right after a change that removes a rule; after the restart its database (a retired
 * source) is reopened and emptied.
 */
import assert from 'node:assert/strict';
import { after, describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BackendRule } from '../../middleware/src/topology/schema.js';
import { parseEndpoint, type SqlServerEndpoint } from '../../middleware/src/topology/endpoint.js';
import { b } from '../support/bytes.js';
import { skipUnless } from '../support/env.js';
import { EtcdClient } from '../support/grpc.js';
import { checkReadableAtRevision, keyNames, listAll, loadKeys, MigrationRig, pagedList, watchFrom, type MigrationStatus } from '../support/migration-rig.js';
import { createScratchStore, type ScratchStore } from '../support/scratch-store.js';
import { storedKeys, storedRevisions } from '../support/stored-keys.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { keyState, lines, replay, stateOf, type State } from '../support/write-model.js';
import { waitUntil } from '../support/wait.js';
import { Writers } from '../support/writers.js';

/** Low, so the mover pauses between batches and a kill can land in the middle of the move. */
const RATE = 100;
/** The source's answer delay while a scan phase (counting, verifying) is to last: about 10 pages, ~3 s. */
const SLOW_SCAN_MS = 300;
/** The source's answer delay while a batch's drop (one DELETE per batch, in its transaction) is to last long enough to be seen. */
const SLOW_DROP_MS = 150;

/** The same endpoint, through the proxy. */
function proxied(endpoint: string, port: number): string {
  const e = parseEndpoint(endpoint) as SqlServerEndpoint;
  return endpoint.replace(`${e.host}:${e.port}`, `127.0.0.1:${port}`);
}

interface Before {
  revision: number;
  initial: State;
}

/** Everything the writers and the pinned list did, checked once the migration is over. */
async function verify(
  t: TestContext,
  rig: MigrationRig,
  before: Before,
  writers: Writers,
  moves: (key: string) => boolean,
  source: { name: string; endpoint: string },
  pinned?: { expected: string[]; paged: string[] },
): Promise<void> {
  const client = new EtcdClient(rig.address);
  try {
    const done: MigrationStatus = await rig.waitStatus('the migration to finish after the restarts', (s) => (!s.active && MigrationRig.source(s, source.name)?.phase === 'done' ? s : undefined));
    assert.equal(await rig.metric('harikube_migration_sources'), 0);
    assert.equal(MigrationRig.source(done, source.name)!.errors, 0, JSON.stringify(done));
    assert.deepEqual(writers.anomalies, [], 'answers to the writers contradicted their own writes');

    // each key once in a list, the state the history leads to (nothing lost, nothing back after its delete)
    const now = await listAll(client, '/registry/');
    const keys = now.kvs.map((kv) => kv.key.toString());
    assert.deepEqual(keys, [...new Set(keys)].sort(), 'a key is listed twice or out of order');
    const acked = writers.acked.filter((a) => a.revision !== undefined);
    const last = Math.max(before.revision + 1, ...acked.map((a) => a.revision!));
    const watch = await watchFrom(client, '/registry/', before.revision + 1);
    const events = await watch.until(last);
    watch.close();
    const final = replay(before.initial, events, writers.attempts, 'watch from before the change, after the crashes');
    assert.deepEqual(lines(stateOf(now.kvs)), lines(final), 'the state after the crashes is not the writers\' state');
    await checkReadableAtRevision(client, writers.attempts);
    if (pinned) assert.deepEqual(pinned.paged, pinned.expected, 'the list pinned before the change changed across the crashes');

    const left = (await storedKeys(source.endpoint)).filter(moves);
    assert.deepEqual(left, [], 'moved keys left in the source database');
    t.diagnostic(`${writers.attempts.length} writes attempted, ${writers.acked.length} acknowledged, ${events.length} events; first failures: ${writers.errors.join('; ')}`);
  } finally {
    client.close();
  }
}

/** One migration being crashed: what the checks after each restart need. */
interface Crashing {
  t: TestContext;
  rig: MigrationRig;
  before: Before;
  writers: Writers;
  /** The source's name in GET /migrations. */
  source: string;
}

/**
 * Kills the middleware (unless the caller did) and starts it again with the same flags. The migration is
 * there again (the restart knows of it only from meta "migrations"). Unless `check` is false: a watch from
 * before the change, caught up from storage across the source and the target (the restart emptied the
 * in-memory event ring), is exactly the writers' history so far, and a list (each key once) is the state
 * that history gives.
 */
async function crashAndRestart(c: Crashing, phase: string, kill = true, check = true): Promise<void> {
  const { t, rig } = c;
  if (kill) await rig.middleware.kill9();
  await rig.middleware.restart();
  const s = await rig.status();
  assert.ok(MigrationRig.source(s, c.source), `after the kill in ${phase}, GET /migrations does not list the source "${c.source}": ${JSON.stringify(s)}`);
  if (!check) return t.diagnostic(`killed in ${phase}; restarted: ${JSON.stringify(s.sources.map((x) => [x.source, x.phase, x.keysMoved, x.keysTotal]))}`);
  const client = new EtcdClient(rig.address);
  try {
    // grpc-js shares connections between clients: the one refused during the restart may still be backing off
    await waitUntil('the restarted middleware to answer over gRPC', () => client.range({ key: b('/registry/') }).then(() => true), { timeoutMs: 30_000, intervalMs: 200 });
    const list = await listAll(client, '/registry/');
    const keys = list.kvs.map((kv) => kv.key.toString());
    assert.deepEqual(keys, [...new Set(keys)].sort(), `after the kill in ${phase}: a key is listed twice or out of order`);
    const upTo = Math.max(list.revision, ...c.writers.acked.map((a) => a.revision ?? 0));
    const watch = await watchFrom(client, '/registry/', c.before.revision + 1);
    const events = await watch.until(upTo);
    watch.close();
    replay(c.before.initial, events, c.writers.attempts, `watch from before the change, after the kill in ${phase}`, upTo);
    const then = replay(c.before.initial, events, c.writers.attempts, `history to the list at ${list.revision}`, list.revision);
    assert.deepEqual(lines(stateOf(list.kvs)), lines(then), `after the kill in ${phase}: the list at ${list.revision} is not the writers' state then`);
    t.diagnostic(`killed in ${phase}; restarted: ${JSON.stringify(s.sources.map((x) => [x.source, x.phase, x.keysMoved, x.keysTotal]))}; history to ${upTo} checked (${events.length} events); writes so far ${c.writers.attempts.length}, acknowledged ${c.writers.acked.length}`);
  } finally {
    client.close();
  }
}

describe('online migration survives kill -9', async () => {
  const stores: ScratchStore[] = [];
  after(async () => {
    for (const s of stores) await s.dispose().catch(() => undefined);
  });

  it('in every phase, moving part of a PostgreSQL backend into SQLite', { skip: await skipUnless('postgres') }, async (t) => {
    const def = await createScratchStore('sqlite');
    stores.push(def);
    const pg = await createScratchStore('postgres');
    stores.push(pg);
    const pgTarget = parseEndpoint(pg.endpoint) as SqlServerEndpoint;
    const proxy = await TcpProxy.start({ host: pgTarget.host, port: pgTarget.port });
    const pgRule = (prefix: string): BackendRule => ({ name: 'pg', endpoint: proxied(pg.endpoint, proxy.port), prefix: { prefix } });
    const rig = await MigrationRig.start({ endpoint: def.endpoint, rules: [pgRule('configmaps/')], migrationRate: RATE, extraArgs: ['--query-timeout', '0'] });
    const client = new EtcdClient(rig.address);
    let writers: Writers | undefined;
    const aborted = new AbortController();
    let background: Promise<unknown> | undefined;
    try {
      // configmaps/move/ leaves the PostgreSQL backend for the default one; configmaps/stay/ (many keys, so
      // each scan of the source is many pages) stays
      const move = keyNames('/registry/configmaps/move/k', 1500);
      const stay = keyNames('/registry/configmaps/stay/s', 8000);
      const local = keyNames('/registry/pods/x/p', 100);
      const moves = (k: string) => k.startsWith('/registry/configmaps/move/');
      await loadKeys(client, [...move, ...stay, ...local], (k) => `init-${k}`);
      for (const k of move.filter((_, i) => i % 10 === 3)) await client.put({ key: b(k), value: b(`v2-${k}`) });
      for (const k of move.filter((_, i) => i % 25 === 11)) await client.deleteRange({ key: b(k) });
      const snapshot = await listAll(client, '/registry/');
      const before: Before = { revision: snapshot.revision, initial: stateOf(snapshot.kvs) };
      const expected = (await listAll(client, '/registry/configmaps/move/', before.revision)).kvs.map((kv) => `${kv.key.toString()} ${JSON.stringify(keyState(kv))}`);

      const written = new Set([...move.filter((_, i) => i % 30 === 0 || i % 30 === 15)]);
      writers = new Writers({
        address: rig.address,
        lanes: [move.filter((_, i) => i % 30 === 0), move.filter((_, i) => i % 30 === 15), [...stay.filter((_, i) => i % 400 === 0), ...local.filter((_, i) => i % 10 === 0), ...keyNames('/registry/configmaps/move/new-', 10, 2)]],
        maxWrites: 4000,
        maxMs: 300_000,
        pauseMs: 50,
      }).start();
      const listing = pagedList(rig.address, '/registry/configmaps/move/', before.revision, 20, () => sleep(400), { retryMs: 300_000, signal: aborted.signal });
      background = listing.catch(() => undefined);
      const crashing: Crashing = { t, rig, before, writers, source: 'pg' };

      await moreAcked(writers, 30);

      // counting: the source answers slowly, so its scan lasts; frozen once seen, so it is still counting when killed
      proxy.delay(SLOW_SCAN_MS);
      rig.writeTopology([pgRule('configmaps/stay/')]);
      await rig.waitStatus('the count of keys to move', (s) => (MigrationRig.source(s, 'pg')?.phase === 'counting' ? true : undefined));
      proxy.freeze();
      assert.equal(MigrationRig.source(await rig.status(), 'pg')?.phase, 'counting', 'the count ended before the source was frozen: raise SLOW_SCAN_MS');
      await rig.middleware.kill9();
      proxy.thaw();
      proxy.delay(SLOW_DROP_MS);
      await crashAndRestart(crashing, 'counting', false);

      // moving, between a batch's copy (committed in the target) and its drop from the source: a key the
      // writers never touch is in both databases; the source is frozen so the drop cannot commit, then killed
      const untouched = move.filter((k) => !written.has(k));
      const both = await findCopiedNotDropped(untouched, def.endpoint, pg.endpoint, proxy);
      await rig.middleware.kill9();
      proxy.thaw();
      proxy.delay(0);
      assert.ok((await storedRevisions(def.endpoint, both)).length > 0 && (await storedRevisions(pg.endpoint, both)).length > 0, `${both} is no longer in both databases after the kill`);
      await crashAndRestart(crashing, `moving (${both} copied, not dropped)`, false);

      // moving, in the mover's pause after a batch (a page of 1000 keys, then 10 s at RATE), writers writing
      await rig.waitStatus('a batch moved after the restart', (s) => {
        const src = MigrationRig.source(s, 'pg');
        return src?.phase === 'moving' && src.keysMoved > 0 ? true : undefined;
      });
      await moreAcked(writers, 30);
      // (the restarted mover's first batch is slowed, to be killed in it next: no checks meanwhile)
      proxy.delay(SLOW_DROP_MS);
      await crashAndRestart(crashing, 'moving (paused after a batch)', true, false);

      // moving, in the restarted mover's first batch
      await rig.waitStatus('the restarted mover to move', (s) => (MigrationRig.source(s, 'pg')?.phase === 'moving' ? true : undefined), 120_000, 10);
      await rig.middleware.kill9();
      proxy.delay(0);

      // verifying: every key moved, the slow source makes the last scan last; frozen once seen, then killed
      const left = (await storedKeys(pg.endpoint)).filter(moves).length;
      if (left === 0) proxy.delay(SLOW_SCAN_MS);
      await crashAndRestart(crashing, `moving (first batch after a restart; ${left} keys left)`, false);
      if (left > 0) {
        // slowed before the last keys move: the verifying scan follows at once (writers keep writing throughout);
        // not sooner: under the limit a batch is a tenth of a second's worth of keys, each a few slowed round trips
        await rig.waitStatus('the last keys to move', (s) => {
          const src = MigrationRig.source(s, 'pg');
          return src?.phase === 'moving' && src.keysTotal - src.keysMoved <= RATE ? true : undefined;
        });
        proxy.delay(SLOW_SCAN_MS);
        await rig.waitStatus('every key moved', (s) => {
          const src = MigrationRig.source(s, 'pg');
          return src?.phase === 'moving' && src.keysMoved === src.keysTotal ? true : undefined;
        });
      }
      await rig.waitStatus('the verifying scan', (s) => (MigrationRig.source(s, 'pg')?.phase === 'verifying' ? true : undefined));
      proxy.freeze();
      assert.equal(MigrationRig.source(await rig.status(), 'pg')?.phase, 'verifying', 'the verifying scan ended before the source was frozen: raise SLOW_SCAN_MS');
      await rig.middleware.kill9();
      proxy.thaw();
      proxy.delay(0);
      await crashAndRestart(crashing, 'verifying', false);

      await rig.waitStatus('the migration to finish', (s) => (!s.active ? true : undefined));
      await writers.stop();
      const paged = (await listing).kvs.map((kv) => `${kv.key.toString()} ${JSON.stringify(keyState(kv))}`);
      await verify(t, rig, before, writers, moves, { name: 'pg', endpoint: pg.endpoint }, { expected, paged });
    } finally {
      aborted.abort();
      proxy.thaw();
      await writers?.stop();
      await background;
      client.close();
      await rig.stop();
      await proxy.close();
    }
  });

  it('right after a change that removes a rule: the retired database is reopened and emptied', async (t) => {
    const def = await createScratchStore('sqlite');
    stores.push(def);
    const old = await createScratchStore('sqlite');
    stores.push(old);
    const oldRule: BackendRule = { name: 'old', endpoint: old.endpoint, prefix: { prefix: 'secrets/' } };
    const rig = await MigrationRig.start({ endpoint: def.endpoint, rules: [oldRule], migrationRate: RATE });
    const client = new EtcdClient(rig.address);
    let writers: Writers | undefined;
    try {
      // more than a page of the mover (1000 keys): some are still to move when the process is killed
      const secrets = keyNames('/registry/secrets/ns/s', 2500);
      const moves = (k: string) => k.startsWith('/registry/secrets/');
      await loadKeys(client, secrets, (k) => `init-${k}`);
      for (const k of secrets.filter((_, i) => i % 20 === 5)) await client.deleteRange({ key: b(k) });
      assert.equal((await storedKeys(old.endpoint)).length, secrets.length, 'the rule did not route the secrets to its database');
      const snapshot = await listAll(client, '/registry/');
      const before: Before = { revision: snapshot.revision, initial: stateOf(snapshot.kvs) };
      writers = new Writers({ address: rig.address, lanes: [secrets.filter((_, i) => i % 20 === 0), secrets.filter((_, i) => i % 20 === 10)], maxWrites: 1000, maxMs: 120_000, pauseMs: 50 }).start();

      await moreAcked(writers, 30);
      rig.writeTopology([]);
      const retired = await rig.waitStatus('the removed rule\'s database to become a retired source', (s) => s.sources.find((x) => x.source.startsWith('retired: '))?.source, 60_000, 10);
      await crashAndRestart({ t, rig, before, writers, source: retired }, `the move out of ${retired}, right after the change`);

      await rig.waitStatus('the retired database to be emptied', (s) => (!s.active ? true : undefined));
      await writers.stop();
      await verify(t, rig, before, writers, moves, { name: retired, endpoint: old.endpoint });
      assert.deepEqual(await storedKeys(old.endpoint), [], 'the retired database still holds keys');
    } finally {
      await writers?.stop();
      client.close();
      await rig.stop();
    }
  });
});

/** Waits until the writers have `n` more writes acknowledged (they write while keys move, not only between crashes). */
function moreAcked(writers: Writers, n: number): Promise<true> {
  const target = writers.acked.length + n;
  return waitUntil(`${n} more acknowledged writes (${writers.errors.at(-1) ?? 'no failure'})`, () => (writers.acked.length >= target ? true : undefined), { timeoutMs: 60_000 });
}

/**
 * Waits until some key of `keys` is in both databases (the mover committed its copy into `target` and is
 * dropping it from `source`, slowly through the proxy), freezes the proxy so the drop cannot commit, and
 * returns the key once the source (read directly) still has it. A drop that committed first is let go and
 * the next batch is waited for.
 */
async function findCopiedNotDropped(keys: string[], target: string, source: string, proxy: TcpProxy): Promise<string> {
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline) {
    const inTarget = new Set(await storedKeys(target));
    const copied = keys.filter((k) => inTarget.has(k));
    if (copied.length > 0) {
      const inSource = new Set(await storedKeys(source));
      const candidate = copied.find((k) => inSource.has(k));
      if (candidate) {
        proxy.freeze();
        if ((await storedRevisions(source, candidate)).length > 0) return candidate;
        proxy.thaw();
      }
      // those keys are done: wait for ones not copied yet
      keys = keys.filter((k) => !inTarget.has(k));
      if (keys.length === 0) throw new Error('every key moved before the test saw one copied but not yet dropped: raise SLOW_DROP_MS');
    }
    await sleep(20);
  }
  throw new Error('no batch was copied within 180 s');
}

/**
 * Online migration into and out of a child middleware (a layer), real processes over gRPC: the parent's
 * default backend is SQLite, its rule "layer" routes namespace team-b to a child middleware (itself over
 * SQLite). One topology edit routes team-a to the child instead: team-a moves from SQLite into the child and
 * team-b from the child back to SQLite, at once, while writers write both namespaces, a watcher of the parent
 * and one of the child itself follow, and a list pinned before the change pages across it. Afterwards: the
 * watcher saw exactly the writers' events (a copy is not an event), the child's own watcher saw only the
 * parent's writes (no copy), the pinned list is the state at its revision (revisions, create revisions and
 * versions unchanged), every acknowledged write reads back at its revision, each database holds exactly the
 * keys routed to it, and `harikube migrate verify` finds every key in place. A child whose own topology routes
 * keys elsewhere cannot take copies: a change that would move keys into it is refused with that reason, and
 * its layer service still reads its deleted keys (the parent's reads during any migration need them).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { status as Status } from '@grpc/grpc-js';
import { LayerClient } from '../../middleware/src/backends/middleware/layer-client.js';
import type { BackendRule } from '../../middleware/src/topology/schema.js';
import { b } from '../support/bytes.js';
import { EtcdClient } from '../support/grpc.js';
import { harikube } from '../support/harikube-cli.js';
import { Middleware } from '../support/middleware.js';
import { checkReadableAtRevision, keyNames, listAll, loadKeys, MigrationRig, pagedList, watchFrom } from '../support/migration-rig.js';
import { createScratchStore, type ScratchStore } from '../support/scratch-store.js';
import { storedKeys } from '../support/stored-keys.js';
import { keyState, lines, replay, stateOf } from '../support/write-model.js';
import { waitUntil } from '../support/wait.js';
import { Writers } from '../support/writers.js';

/** Keys per second the mover may move: low enough that the writers overlap several of its batches. */
const RATE = 200;

const inTeam = (team: string) => (k: string) => k.includes(`/${team}/`);
const every = (keys: string[], step: number, offset = 0) => keys.filter((_, i) => i % step === offset);

describe('online migration into and out of a child middleware', () => {
  const stores: ScratchStore[] = [];
  after(async () => {
    for (const s of stores) await s.dispose().catch(() => undefined);
  });

  it('moves one namespace from SQLite into the child and another from the child to SQLite, under writers and watchers', async () => {
    const [def, childStore] = await Promise.all([createScratchStore('sqlite'), createScratchStore('sqlite')]);
    stores.push(def!, childStore!);
    const child = await Middleware.start({ endpoint: childStore!.endpoint, compactInterval: '0' });
    const layer = (namespace: string): BackendRule => ({ name: 'layer', endpoint: `http://${child.address}`, namespace: { namespace } });
    const rig = await MigrationRig.start({ endpoint: def!.endpoint, migrationRate: RATE, rules: [layer('team-b')], extraArgs: ['--query-timeout', '5s'] });
    const client = new EtcdClient(rig.address);
    const childClient = new EtcdClient(child.address);
    const background: (() => Promise<unknown>)[] = [];
    const aborted = new AbortController();
    try {
      const teamA = keyNames('/registry/pods/team-a/p', 300, 3);
      const teamB = keyNames('/registry/pods/team-b/p', 300, 3);
      const staying = keyNames('/registry/pods/team-c/p', 50, 2);
      await loadKeys(client, [...teamA, ...teamB, ...staying], (k) => `init-${k}`);
      // a history that moves too: second versions and deletions (tombstones)
      for (const k of [...every(teamA, 10, 3), ...every(teamB, 10, 4)]) await client.put({ key: b(k), value: b(`v2-${k}`) });
      for (const k of [...every(teamA, 25, 11), ...every(teamB, 25, 12)]) await client.deleteRange({ key: b(k) });
      const lease = (await client.leaseGrant(3600)).ID;
      const leased = [teamA[1]!, teamA[2]!, teamB[1]!];
      for (const k of leased) await client.put({ key: b(k), value: b(`leased-${k}`), lease });
      assert.deepEqual((await storedKeys(childStore!.endpoint)).filter(inTeam('team-a')), [], 'team-a is in the child before the change');

      const pinned = await listAll(client, '/registry/');
      const initial = stateOf(pinned.kvs);
      const watcher = await watchFrom(client, '/registry/', pinned.revision + 1);
      const childHead = Number((await childClient.range({ key: b('/') })).header.revision);
      const childWatcher = await watchFrom(childClient, '/registry/', childHead + 1);

      const writers = new Writers({
        address: rig.address,
        lanes: [every(teamA, 15), every(teamB, 15), every(staying, 5)],
        maxWrites: 600,
        maxMs: 90_000,
        pauseMs: 30,
      }).start();
      background.push(() => writers.stop());
      const phases: string[] = [];
      const listing = pagedList(rig.address, '/registry/pods/', pinned.revision, 40, async () => {
        const s = await rig.status();
        phases.push(s.active ? s.sources.map((x) => `${x.source}:${x.phase} ${x.keysMoved}/${x.keysTotal}`).join(',') : 'idle');
        await sleep(100);
      }, { signal: aborted.signal });
      background.push(() => listing.catch(() => undefined));

      await sleep(300);
      rig.writeTopology([layer('team-a')]);
      const done = await rig.waitStatus('both migrations to finish', (s) =>
        !s.active && ['', 'layer'].every((n) => MigrationRig.source(s, n)?.phase === 'done') ? s : undefined,
      );
      await writers.stop();
      const paged = await listing;

      assert.deepEqual(writers.errors, [], 'writes failed while keys moved');
      assert.deepEqual(writers.anomalies, [], 'answers to the writers contradicted their own writes');
      assert.ok(phases.some((p) => p.includes('moving')), `the pinned list did not page while keys moved (pages: ${phases.join(' | ')})`);
      const moved = done.sources.map((s) => [s.source, s.targets, s.errors]);
      assert.deepEqual(moved.sort(), [['', ['layer'], 0], ['layer', [''], 0]].sort(), JSON.stringify(done));
      assert.ok(done.sources.every((s) => s.keysMoved >= 300), JSON.stringify(done));

      // the parent's watcher saw exactly the writers' events (no copy); the state after is theirs
      const lastRevision = Math.max(...writers.acked.map((a) => a.revision ?? 0));
      const events = await watcher.until(lastRevision);
      const final = replay(initial, events, writers.attempts, 'watch of the parent from before the change');
      assert.deepEqual(lines(stateOf((await listAll(client, '/registry/')).kvs)), lines(final));
      // the child's own watcher: the parent's writes to keys the child held, nothing else (no copy)
      const acked = new Set(writers.acked.map((a) => `${a.key} ${a.revision}`));
      const childEvents = childWatcher.events().map((e) => `${e.kv.key.toString()} ${Number(e.kv.mod_revision)}`);
      assert.ok(childEvents.length > 0, 'the child\'s watcher saw none of the parent\'s writes');
      assert.deepEqual(childEvents.filter((e) => !acked.has(e)), [], 'the child\'s watcher saw events that are no write (copies)');
      // the pinned list: the state at its revision, page after page, with its revisions and versions
      const show = (kvs: typeof paged.kvs) => kvs.map((kv) => `${kv.key.toString()} ${JSON.stringify(keyState(kv))}`);
      assert.deepEqual(show(paged.kvs), show(pinned.kvs.filter((kv) => kv.key.toString().startsWith('/registry/pods/'))));
      assert.deepEqual(show((await listAll(client, '/registry/pods/', pinned.revision)).kvs), show(paged.kvs), 'the list at the pinned revision changed');
      await checkReadableAtRevision(client, writers.attempts);

      // where the keys are, each in one database (tombstones included)
      const inDefault = await storedKeys(def!.endpoint);
      const inChild = await storedKeys(childStore!.endpoint);
      assert.deepEqual(inDefault.filter(inTeam('team-a')), [], 'team-a keys left in SQLite');
      assert.deepEqual(inChild.filter((k) => !inTeam('team-a')(k)), [], 'keys other than team-a in the child');
      assert.deepEqual(teamA.filter((k) => !inChild.includes(k)), [], 'team-a keys (tombstones included) missing from the child');
      assert.deepEqual(teamB.filter((k) => !inDefault.includes(k)), [], 'team-b keys (tombstones included) missing from SQLite');

      // the lease moved with its keys: revoking it deletes them where they are now
      assert.deepEqual((await client.leaseTimeToLive(lease, true)).keys.map((k) => k.toString()).sort(), [...leased].sort());
      await client.leaseRevoke(lease);
      for (const k of leased) assert.equal((await client.range({ key: b(k) })).kvs.length, 0, `${k} outlived its revoked lease`);

      const verify = await harikube(['migrate', 'verify', '--endpoint', def!.endpoint]);
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);
      assert.match(verify.stdout, /rule "layer" \(http:\/\/[^)]+\): \d+ keys, all in place/);
      assert.doesNotMatch(verify.stdout, /NOT OK/);
      watcher.close();
      childWatcher.close();
    } finally {
      aborted.abort();
      for (const stop of background) await stop();
      client.close();
      childClient.close();
      await rig.stop();
      await child.stop();
    }
  });

  it('a child whose own keys span backends: keys do not move into it (refused with its reason), its deleted keys still read', async () => {
    const [def, childStore, deepStore] = await Promise.all([createScratchStore('sqlite'), createScratchStore('sqlite'), createScratchStore('sqlite')]);
    stores.push(def!, childStore!, deepStore!);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'hk-migration-layers-'));
    const deep = await Middleware.start({ endpoint: deepStore!.endpoint, compactInterval: '0' });
    let child: Middleware | undefined;
    let rig: MigrationRig | undefined;
    let client: EtcdClient | undefined;
    let layerClient: LayerClient | undefined;
    try {
      const childTopology = path.join(dir, 'child.yaml');
      await writeFile(childTopology, stringify({ backends: [{ name: 'deep', endpoint: `http://${deep.address}`, prefix: { prefix: 'secrets/' } }] }));
      child = await Middleware.start({ endpoint: childStore!.endpoint, compactInterval: '0', extraArgs: ['--topology-config', `file://${childTopology}`] });
      const layer = (teams: string): BackendRule => ({ name: 'layer', endpoint: `http://${child!.address}`, regexp: { key: `^/registry/[^/]+/team-[${teams}]/` } });
      rig = await MigrationRig.start({ endpoint: def!.endpoint, migrationRate: 0, rules: [layer('x')] });
      client = new EtcdClient(rig.address);
      for (const k of ['/registry/pods/team-a/p1', '/registry/pods/team-x/p1', '/registry/pods/team-x/p2', '/registry/secrets/team-x/s1']) await client.put({ key: b(k), value: b(k) });
      await client.deleteRange({ key: b('/registry/pods/team-x/p2') });

      rig.writeTopology([layer('ax')]);
      await waitUntil('the refusal', async () => ((await rig!.metric('harikube_topology_last_apply_failed')) === 1 ? true : undefined), { timeoutMs: 30_000 });
      const why = /refused: it would move existing keys into or out of a backend that cannot take part in a migration[^"]*1 key\(s\) from default backend to \\"layer\\": \/registry\/pods\/team-a\/p1 [^"]*it routes keys to 1 backend\(s\) of its own \(topology rules \\"deep\\"\)/;
      await waitUntil('the refusal in the log', () => (why.test(rig!.log()) ? true : undefined), { timeoutMs: 10_000 });
      assert.deepEqual((await rig.status()).sources, [], 'a refused change started a migration');
      assert.deepEqual(await storedKeys(def!.endpoint), ['/registry/pods/team-a/p1'], 'the key left the default backend');

      // the child's layer service itself: deleted keys read across its backends, copies refused with the reason
      layerClient = new LayerClient({ hosts: [child.address], tls: false, timeoutMs: 10_000, description: 'the child' });
      const rows = (await layerClient.call('RangeWithTombstones', { start: b('/registry/'), end: b('/registry0'), revision: Number.MAX_SAFE_INTEGER, limit: 0, keysOnly: true })).rows;
      assert.deepEqual(rows.map((r) => [r.key.toString(), r.deleted]), [['/registry/pods/team-x/p1', false], ['/registry/pods/team-x/p2', true], ['/registry/secrets/team-x/s1', false]]);
      const copy = await layerClient.call('CopyIn', { rows: [] }).then(() => undefined, (err: Error) => err);
      assert.equal((copy?.cause as { code?: number } | undefined)?.code, Status.FAILED_PRECONDITION, String(copy));
      assert.match(copy!.message, /keys cannot move into or out of this child layer: it routes keys to 1 backend\(s\) of its own/);
    } finally {
      layerClient?.close();
      client?.close();
      await rig?.stop();
      await child?.stop();
      await deep.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});


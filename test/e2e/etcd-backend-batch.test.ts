/**
 * Group-commit batches on a real etcd rule backend, with real processes. A batch's global revisions go to
 * the etcd in one etcd transaction (backends/etcd/etcd-backend.ts, commitRows; a new one where a key comes
 * again): every global revision, one inside a batch included, must still read back exactly (the state at
 * it, nothing later), watch replay must deliver each write once in order, and a kill -9 of the etcd in the
 * middle of batches must lose no acknowledged write and hand no revision out twice.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status as Status } from '@grpc/grpc-js';
import { assertAckedWritesKept, type AckedWrites } from '../support/acked-writes.js';
import { skipUnless } from '../support/env.js';
import { Etcd } from '../support/etcd.js';
import { etcdctlJson } from '../support/etcdctl.js';
import { EtcdClient } from '../support/grpc.js';
import { startEtcdRule, type EtcdRuleRig } from '../support/etcd-rule.js';
import { Middleware } from '../support/middleware.js';
import { scrapeSum } from '../support/metrics.js';
import { waitUntil } from '../support/wait.js';

const skip = await skipUnless('etcd');

const b = (s: string) => Buffer.from(s);
/** batch/ keys all live in the etcd; crash/ keys ending in an even digit too, the rest in SQLite. */
const inEtcd = (key: string) => key.startsWith('batch/') || /^crash\/.*[02468]$/.test(key);

interface Version {
  value: string;
  mod: bigint;
  create: bigint;
  version: number;
}

/** One acknowledged change: `value` undefined for a delete. */
interface Change {
  revision: bigint;
  key: string;
  value?: string;
}

/** A counter of the middleware's /metrics, summed over its label sets matching `labels`. */
function counter(mw: Middleware, name: string, labels = ''): Promise<number> {
  return scrapeSum(`http://${mw.metricsAddress}/metrics`, name, labels);
}

describe('group-commit batches on an etcd rule backend', { skip }, () => {
  let rig: EtcdRuleRig;
  let etcd: Etcd;
  let mw: Middleware;
  let client: EtcdClient;

  before(async () => {
    rig = await startEtcdRule('^batch/|^crash/.*[02468]$');
    ({ etcd, mw, client } = rig);
  });

  after(async () => {
    await rig?.stop();
  });

  it('concurrent writes read back exactly at their own revisions and at every revision between them', async () => {
    for (let i = 0; i < 8; i++) await client.put({ key: b(`batch/pre/${i}`), value: b(`pre${i}`) });
    const base = await client.range({ key: b('batch/'), range_end: b('batch0') });
    const baseRev = BigInt(base.header.revision);
    const state = new Map<string, Version>(base.kvs.map((kv) => [kv.key.toString(), { value: kv.value.toString(), mod: BigInt(kv.mod_revision), create: BigInt(kv.create_revision), version: Number(kv.version) }]));
    const watch = client.watch();
    const w = (await watch.create({ key: b('batch/'), range_end: b('batch0'), start_revision: String(baseRev + 1n), prev_kv: true })).watch_id;
    const roundsBefore = await counter(mw, 'harikube_etcd_backend_commit_rounds_total');
    const appliedBefore = await counter(mw, 'harikube_etcd_backend_commit_txns_total', 'result="applied"');

    // all at once, so they queue up behind each other and commit in batches of many revisions: creates,
    // updates, deletes, one key written again and again, and a transaction writing two keys
    const put = async (key: string, value: string): Promise<Change[]> => [{ revision: BigInt((await client.put({ key: b(key), value: b(value) })).header.revision), key, value }];
    const ops: Promise<Change[]>[] = [];
    for (let i = 0; i < 24; i++) ops.push(put(`batch/new/${i}`, `new${i}`));
    for (let i = 0; i < 4; i++) ops.push(put(`batch/pre/${i}`, `updated${i}`));
    for (let i = 4; i < 8; i++) {
      ops.push(client.deleteRange({ key: b(`batch/pre/${i}`) }).then((r) => [{ revision: BigInt(r.header.revision), key: `batch/pre/${i}` }]));
    }
    for (let i = 0; i < 8; i++) ops.push(put('batch/hot', `hot${i}`));
    ops.push(
      client
        .txn({ compare: [], success: ['a', 'b'].map((k) => ({ request_put: { key: b(`batch/txn/${k}`), value: b(`txn-${k}`) } })), failure: [] })
        .then((r) => ['a', 'b'].map((k) => ({ revision: BigInt(r.header.revision), key: `batch/txn/${k}`, value: `txn-${k}` }))),
    );
    const changes = (await Promise.all(ops)).flat().sort((x, y) => (x.revision < y.revision ? -1 : x.revision > y.revision ? 1 : x.key < y.key ? -1 : 1));
    const revisions = [...new Set(changes.map((c) => c.revision))];
    assert.equal(revisions.length, 24 + 4 + 4 + 8 + 1, 'each request has a revision of its own');
    assert.equal(revisions[0], baseRev + 1n, 'the first revision follows the base (nothing else writes meanwhile)');
    assert.equal(revisions[revisions.length - 1], baseRev + BigInt(revisions.length), 'and the revisions leave no gap');

    // the state at every revision, from the base to the last write, as etcd would answer it
    const expected: { rev: bigint; kvs: [string, string, string, string, string][]; prev: Map<string, Version | undefined> }[] = [];
    for (const rev of revisions) {
      const prev = new Map<string, Version | undefined>();
      for (const c of changes.filter((x) => x.revision === rev)) {
        const before = state.get(c.key);
        prev.set(c.key, before);
        if (c.value === undefined) state.delete(c.key);
        else state.set(c.key, { value: c.value, mod: rev, create: before?.create ?? rev, version: (before?.version ?? 0) + 1 });
      }
      const kvs = [...state].sort(([a], [z]) => (a < z ? -1 : 1)).map(([k, v]) => [k, v.value, String(v.mod), String(v.create), String(v.version)] as [string, string, string, string, string]);
      expected.push({ rev, kvs, prev });
    }
    for (const { rev, kvs } of expected) {
      const got = await client.range({ key: b('batch/'), range_end: b('batch0'), revision: String(rev) });
      assert.deepEqual(
        got.kvs.map((kv) => [kv.key.toString(), kv.value.toString(), kv.mod_revision, kv.create_revision, kv.version]),
        kvs,
        `the range at revision ${rev} holds exactly the state at ${rev}`,
      );
      assert.equal(Number(got.count), kvs.length, `count at ${rev}`);
    }
    // a client reading at the revision its put returned sees its own value
    for (const c of changes.filter((x) => x.key === 'batch/hot')) {
      const got = await client.range({ key: b(c.key), revision: String(c.revision) });
      assert.equal(got.kvs[0]?.value.toString(), c.value, `batch/hot at ${c.revision}`);
    }

    // watch replay: each change once, in revision order, with the version it replaced
    const events = await watch.waitForEvents(w, changes.length, 30_000);
    assert.deepEqual(
      events.map((e) => [e.type ?? 'Put', e.kv!.key.toString(), e.kv!.mod_revision, e.type === 'Delete' ? '' : e.kv!.value.toString()]),
      changes.map((c) => [c.value === undefined ? 'Delete' : 'Put', c.key, String(c.revision), c.value ?? '']),
    );
    for (const e of events) {
      const before = expected.find((x) => String(x.rev) === e.kv!.mod_revision)!.prev.get(e.kv!.key.toString());
      assert.deepEqual(e.prev_kv ? [e.prev_kv.value.toString(), e.prev_kv.mod_revision] : undefined, before ? [before.value, String(before.mod)] : undefined, `prev_kv of ${e.kv!.key.toString()} at ${e.kv!.mod_revision}`);
    }
    watch.close();

    // in the etcd: one map entry per global revision, the revisions of a batch sharing an etcd revision
    const map = await etcdctlJson<{ kvs: { key: string; mod_revision: number }[] }>(etcd.address, ['get', '--prefix', 'harikube/revision/', '-w', 'json']);
    const entries = map.kvs.map((kv) => [BigInt(Buffer.from(kv.key, 'base64').toString().slice('harikube/revision/'.length)), kv.mod_revision] as const);
    const ours = entries.filter(([g]) => g > baseRev);
    assert.deepEqual(ours.map(([g]) => g), revisions, 'a map entry for every global revision written');
    for (let i = 1; i < ours.length; i++) assert.ok(ours[i]![1] >= ours[i - 1]![1], 'etcd revisions ascend with the global ones');
    const etcdRevisions = new Set(ours.map(([, e]) => e)).size;

    // the batches went out grouped: fewer etcd transactions than global revisions, each awaited (one round)
    const rounds = (await counter(mw, 'harikube_etcd_backend_commit_rounds_total')) - roundsBefore;
    const applied = (await counter(mw, 'harikube_etcd_backend_commit_txns_total', 'result="applied"')) - appliedBefore;
    assert.equal(applied, etcdRevisions, 'one etcd transaction per etcd revision of the map');
    assert.ok(applied < revisions.length, `${revisions.length} global revisions in ${applied} etcd transactions`);
    assert.equal(rounds, applied, 'each transaction one round, none resent');
  });

  it('a kill -9 of the etcd in the middle of batches loses no acknowledged write and hands out no revision twice', async () => {
    const start = BigInt((await client.range({ key: b('x') })).header.revision);
    const watch = client.watch();
    const w = (await watch.create({ key: b('crash/'), range_end: b('crash0'), start_revision: String(start + 1n), prev_kv: true })).watch_id;
    const acked: AckedWrites = new Map();
    const failed: string[] = [];
    let phase: 'before' | 'down' | 'back' = 'before';
    const writer = async (n: number) => {
      // bounded; 10 writes each once the etcd is back
      for (let i = 0, tail = 0; i < 400 && tail < 10; i++) {
        if (phase === 'back') tail++;
        const key = `crash/${n}/${i}`;
        try {
          const res = await client.put({ key: b(key), value: b(`v${i}`) });
          acked.set(key, { value: `v${i}`, revision: BigInt(res.header.revision) });
        } catch (err) {
          assert.equal((err as { code?: number }).code, Status.UNAVAILABLE, `a write during the outage fails with Unavailable: ${String(err)}`);
          assert.ok(inEtcd(key), `${key} is not in the etcd, yet its write failed: ${String(err)}`);
          failed.push(key);
        }
      }
    };
    // many writers: batches of many etcd revisions are in flight when the etcd dies
    const writers = Promise.all(Array.from({ length: 16 }, (_, n) => writer(n)));
    await waitUntil('writes before the crash', () => (acked.size >= 80 ? true : undefined), { timeoutMs: 60_000 });
    await etcd.kill9();
    phase = 'down';
    await waitUntil('etcd writes failing', () => (failed.length >= 5 ? true : undefined), { timeoutMs: 30_000 });
    await etcd.restart();
    await waitUntil('etcd keys writable again without a restart', async () => {
      try {
        return (await client.put({ key: b('crash/after/0'), value: b('back') })) && true;
      } catch {
        return undefined;
      }
    }, { timeoutMs: 30_000 });
    phase = 'back';
    await writers;
    const stored = await assertAckedWritesKept(client, { key: b('crash/'), range_end: b('crash0') }, acked, { stream: watch, id: w, timeoutMs: 60_000 });
    watch.close();
    const revisions = [...acked.values()].map((a) => a.revision);
    assert.equal(new Set(revisions).size, revisions.length, 'no revision acknowledged twice');
    // every key is written once: the keys at revision R are exactly those stored with a revision <= R
    const byRev = stored.kvs.map((kv) => [BigInt(kv.mod_revision), kv.key.toString()] as const).sort((x, y) => (x[0] < y[0] ? -1 : 1));
    for (let i = 0; i < byRev.length; i += 7) {
      const rev = byRev[i]![0];
      const got = await client.range({ key: b('crash/'), range_end: b('crash0'), revision: String(rev), keys_only: true });
      assert.deepEqual(got.kvs.map((kv) => kv.key.toString()).sort(), byRev.slice(0, i + 1).map(([, k]) => k).sort(), `keys at revision ${rev}`);
    }
  });
});

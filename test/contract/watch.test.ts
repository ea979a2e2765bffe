/**
 * Watch: created answers in request order, history replay, event shapes, ordering without gaps or
 * duplicates, revisions never split across responses, future start revisions, filters, client-chosen ids,
 * cancel. (Progress: watch-progress.test.ts. Start below compaction: compaction.test.ts.)
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { ZERO_BYTE, b, rev, text, underPrefix } from '../support/bytes.js';
import { contractSuite } from '../support/contract.js';
import type { Event, WatchResponse } from '../support/etcd-types.js';
import type { WatchStream } from '../support/watch-stream.js';
import { SPLIT_PREFIX, assertSplitStored, splitKey } from '../support/namespace-split.js';
import { SPLIT_NAMESPACE } from '../support/targets.js';

/** [type, key suffix, value, mod_revision] of events, for readable deep comparisons. */
const brief = (events: Event[], prefix: string) =>
  events.map((e) => [e.type, text(e.kv.key).slice(prefix.length), text(e.kv.value), e.kv.mod_revision]);

/** Waits until the watch has delivered an event at `revision` (events are revision-ordered, so all earlier ones are in). */
const untilRevision = (w: WatchStream, watchId: string, revision: bigint) =>
  w.waitFor(`event at revision ${revision} on watch ${watchId}`, () => {
    const events = w.eventsOf(watchId);
    return events.some((e) => BigInt(e.kv.mod_revision) >= revision) ? events : undefined;
  });

await contractSuite('watch', (t) => {
  it('answers creates in request order', async () => {
    const p = t.prefix('watch-order');
    const w = t.client.watch();
    const keys = [0, 1, 2, 3, 4].map((i) => `${p}${i}`);
    const sent = keys.map((k) => w.sendCreate({ key: b(k) }));
    const created = await Promise.all(sent.map((i) => w.createdResponse(i)));
    assert.equal(new Set(created.map((c) => c.watch_id)).size, keys.length, 'distinct watch ids');
    for (const k of [...keys].reverse()) await t.client.put({ key: b(k), value: b(k) });
    for (const [i, k] of keys.entries()) {
      const [event] = await w.waitForEvents(created[i]!.watch_id, 1);
      assert.equal(text(event!.kv.key), k, `the ${i}-th created response belongs to the ${i}-th create`);
    }
    w.close();
  });

  it('event shapes: create, update with prev_kv, delete, re-create; live and replayed alike', async () => {
    const p = t.prefix('watch-shapes');
    const key = b(`${p}k`);
    const live = t.client.watch();
    const liveId = (await live.create({ key, prev_kv: true })).watch_id;
    const r1 = rev(await t.client.put({ key, value: b('v1') }));
    const r2 = rev(await t.client.put({ key, value: b('v2') }));
    const r3 = rev(await t.client.deleteRange({ key }));
    const r4 = rev(await t.client.put({ key, value: b('v3') }));
    const liveEvents = await live.waitForEvents(liveId, 4);

    const replay = t.client.watch();
    const replayId = (await replay.create({ key, prev_kv: true, start_revision: String(r1) })).watch_id;
    const replayed = await replay.waitForEvents(replayId, 4);

    for (const events of [liveEvents, replayed]) {
      assert.equal(events.length, 4);
      const [create, update, del, recreate] = events as [Event, Event, Event, Event];
      assert.deepEqual(brief(events, p), [
        ['Put', 'k', 'v1', String(r1)],
        ['Put', 'k', 'v2', String(r2)],
        ['Delete', 'k', '', String(r3)],
        ['Put', 'k', 'v3', String(r4)],
      ]);
      assert.equal(create.kv.create_revision, create.kv.mod_revision);
      assert.equal(create.kv.version, '1');
      assert.equal(create.prev_kv, null, 'a create has no prev_kv');
      assert.deepEqual([text(update.prev_kv!.value), update.prev_kv!.mod_revision], ['v1', String(r1)]);
      assert.equal(update.kv.create_revision, String(r1));
      assert.equal(update.kv.version, '2');
      assert.equal(del.kv.value.length, 0);
      assert.deepEqual([text(del.prev_kv!.value), del.prev_kv!.mod_revision, del.prev_kv!.version], ['v2', String(r2), '2']);
      assert.deepEqual([recreate.kv.create_revision, recreate.kv.version, recreate.prev_kv], [String(r4), '1', null]);
    }
    assert.deepEqual(replayed, liveEvents);
    live.close();
    replay.close();
  });

  it('without prev_kv, events carry no prev_kv', async () => {
    const key = b(`${t.prefix('watch-no-prev')}k`);
    const w = t.client.watch();
    const id = (await w.create({ key })).watch_id;
    await t.client.put({ key, value: b('1') });
    await t.client.put({ key, value: b('2') });
    await t.client.deleteRange({ key });
    const events = await w.waitForEvents(id, 3);
    assert.deepEqual(events.map((e) => e.prev_kv), [null, null, null]);
    w.close();
  });

  it('delivers every revision once, in order, never splitting a revision across responses', async () => {
    const p = t.prefix('watch-stream-order');
    const liveA = t.client.watch();
    const liveB = t.newClient().watch();
    const idA = (await liveA.create({ ...underPrefix(p), prev_kv: true })).watch_id;
    const idB = (await liveB.create({ ...underPrefix(p) })).watch_id;
    const r0 = rev(await t.client.range({ key: b(p) }));

    // Three concurrent writers; every op writes 1 or 3 keys at one revision. Bounded: 3 × 15 ops.
    const expected = new Map<bigint, number>();
    const writer = async (wi: number) => {
      const c = t.newClient();
      for (let i = 0; i < 15; i++) {
        const sub = `${p}${wi}/${i}/`;
        const keys = ['a', 'b', 'c'].map((k) => b(sub + k));
        if (i % 3 === 0) {
          expected.set(rev(await c.put({ key: keys[0]!, value: b('single') })), 1);
        } else {
          const res = await c.txn({ success: keys.map((key) => ({ request_put: { key, value: b(`m${i}`) } })) });
          expected.set(rev(res), 3);
          if (i % 3 === 2) expected.set(rev(await c.deleteRange(underPrefix(sub))), 3);
        }
      }
    };
    await Promise.all([0, 1, 2].map(writer));
    const total = [...expected.values()].reduce((a, n) => a + n, 0);
    const last = [...expected.keys()].reduce((a, r) => (r > a ? r : a), 0n);

    const replay = t.client.watch();
    const idR = (await replay.create({ ...underPrefix(p), start_revision: String(r0 + 1n) })).watch_id;

    for (const [w, id] of [[liveA, idA], [liveB, idB], [replay, idR]] as const) {
      const events = await w.waitForEvents(id, total, 20_000);
      assert.equal(events.length, total, 'no duplicates');
      const revs = events.map((e) => BigInt(e.kv.mod_revision));
      for (let i = 1; i < revs.length; i++) assert.ok(revs[i]! >= revs[i - 1]!, `revision order broken at ${i}`);
      const perRevision = new Map<bigint, number>();
      for (const r of revs) perRevision.set(r, (perRevision.get(r) ?? 0) + 1);
      assert.deepEqual([...perRevision].sort((x, y) => Number(x[0] - y[0])), [...expected].sort((x, y) => Number(x[0] - y[0])));
      assert.equal(revs.at(-1), last);
      // All events of one revision arrive in one response.
      const responsesWith = new Map<bigint, Set<WatchResponse>>();
      for (const res of w.responses.filter((r) => r.watch_id === id)) {
        for (const e of res.events) {
          const set = responsesWith.get(BigInt(e.kv.mod_revision)) ?? new Set();
          set.add(res);
          responsesWith.set(BigInt(e.kv.mod_revision), set);
        }
      }
      for (const [r, set] of responsesWith) assert.equal(set.size, 1, `revision ${r} split across ${set.size} responses`);
    }
    assert.deepEqual(liveB.eventsOf(idB).map((e) => [e.type, e.kv]), liveA.eventsOf(idA).map((e) => [e.type, e.kv]));
    for (const w of [liveA, liveB, replay]) w.close();
  });

  it('a future start revision is legal and delivers from that revision on', async () => {
    const p = t.prefix('watch-future');
    const key = b(`${p}k`);
    const r0 = rev(await t.client.range({ key }));
    const w = t.client.watch();
    const created = await w.create({ key, start_revision: String(r0 + 3n) });
    assert.equal(created.canceled, false);
    for (let i = 1; i <= 4; i++) await t.client.put({ key, value: b(`v${i}`) });
    const events = await untilRevision(w, created.watch_id, r0 + 4n);
    assert.deepEqual(brief(events, p), [
      ['Put', 'k', 'v3', String(r0 + 3n)],
      ['Put', 'k', 'v4', String(r0 + 4n)],
    ]);
    w.close();
  });

  it('filters: NOPUT drops puts, NODELETE drops deletes', async () => {
    const p = t.prefix('watch-filters');
    const key = b(`${p}k`);
    const w = t.client.watch();
    const noPut = (await w.create({ key, filters: ['Noput'] })).watch_id;
    const noDelete = (await w.create({ key, filters: ['Nodelete'] })).watch_id;
    const r1 = rev(await t.client.put({ key, value: b('1') }));
    const r2 = rev(await t.client.deleteRange({ key }));
    const r3 = rev(await t.client.put({ key, value: b('2') }));
    const r4 = rev(await t.client.deleteRange({ key }));
    const r5 = rev(await t.client.put({ key, value: b('3') }));
    const deletes = await untilRevision(w, noPut, r4);
    assert.deepEqual(deletes.map((e) => [e.type, e.kv.mod_revision]), [['Delete', String(r2)], ['Delete', String(r4)]]);
    const puts = await untilRevision(w, noDelete, r5);
    assert.deepEqual(puts.map((e) => [e.type, e.kv.mod_revision]), [['Put', String(r1)], ['Put', String(r3)], ['Put', String(r5)]]);
    w.close();
  });

  it('client-chosen watch ids are used, never reused, and a duplicate is refused', async () => {
    const p = t.prefix('watch-ids');
    const key = b(`${p}k`);
    const w = t.client.watch();
    const sent = [w.sendCreate({ key }), w.sendCreate({ key, watch_id: 100 }), w.sendCreate({ key })];
    const [autoA, chosen, autoB] = await Promise.all(sent.map((i) => w.createdResponse(i)));
    assert.equal(chosen!.watch_id, '100', 'created answers come in request order, with the chosen id');
    assert.equal(new Set([autoA!.watch_id, chosen!.watch_id, autoB!.watch_id]).size, 3);
    const r1 = rev(await t.client.put({ key, value: b('v') }));
    const [event] = await w.waitForEvents('100', 1);
    assert.equal(event!.kv.mod_revision, String(r1));

    const dup = await w.create({ key, watch_id: 100 });
    assert.deepEqual(
      [dup.created, dup.canceled, dup.watch_id, dup.cancel_reason],
      [true, true, '-1', 'mvcc: duplicate watch ID provided on the WatchStream'],
    );
    w.close();
  });

  it('cancel answers canceled and stops the watch', async () => {
    const key = b(`${t.prefix('watch-cancel')}k`);
    const w = t.client.watch();
    const doomed = (await w.create({ key })).watch_id;
    const canceled = await w.cancel(doomed);
    assert.equal(canceled.canceled, true);
    const witness = (await w.create({ key })).watch_id;
    const r1 = rev(await t.client.put({ key, value: b('v') }));
    const [seen] = await w.waitForEvents(witness, 1);
    assert.equal(seen!.kv.mod_revision, String(r1));
    assert.deepEqual(w.eventsOf(doomed), [], 'a canceled watch gets no events');
    w.close();
  });

  it('a single-key watch ignores keys sharing its prefix; range_end "\\0" watches everything from key on', async () => {
    const p = t.prefix('watch-key-range');
    const w = t.client.watch();
    const single = (await w.create({ key: b(`${p}k`) })).watch_id;
    const fromM = (await w.create({ key: b(`${p}m`), range_end: ZERO_BYTE })).watch_id;
    await t.client.put({ key: b(`${p}k2`), value: b('x') });
    await t.client.put({ key: b(`${p}a`), value: b('x') });
    const rk = rev(await t.client.put({ key: b(`${p}k`), value: b('x') }));
    const rz = rev(await t.client.put({ key: b(`${p}z`), value: b('x') }));
    assert.deepEqual(brief(await untilRevision(w, single, rk), p), [['Put', 'k', 'x', String(rk)]]);
    assert.deepEqual(brief(await untilRevision(w, fromM, rz), p), [['Put', 'z', 'x', String(rz)]]);
    w.close();
  });

  // The only case of this file under /registry/configmaps/.
  it('a watch over a resource prefix a namespace rule splits: every event once, in revision order, prev_kv from both backends, live and replayed', async () => {
    const [k0, k1, k2, k3] = [splitKey('ns-0', 'w-A'), splitKey(SPLIT_NAMESPACE, 'w-B'), splitKey('ns-b', 'w-C'), splitKey(SPLIT_NAMESPACE, 'w-D')];
    const live = t.client.watch();
    const liveId = (await live.create({ ...underPrefix(SPLIT_PREFIX), prev_kv: true })).watch_id;
    /** [type, key, value, mod_revision, prev value or null], as the writes below make them. */
    const want: [string, string, string, string, string | null][] = [];
    const put = async (k: string, v: string, prev: string | null) => {
      const res = await t.client.put({ key: b(k), value: b(v), prev_kv: true });
      assert.equal(res.prev_kv === null ? null : text(res.prev_kv.value), prev, `prev_kv of the put of ${k}`);
      want.push(['Put', k, v, res.header.revision, prev]);
      return rev(res);
    };
    const first = await put(k0, 'a1', null);
    await put(k1, 'b1', null);
    await put(k2, 'c1', null);
    await put(k1, 'b2', 'b1');
    await put(k0, 'a2', 'a1');
    await put(k3, 'd1', null);
    const single = await t.client.deleteRange({ key: b(k2), prev_kv: true });
    assert.deepEqual(single.prev_kvs.map((kv) => [text(kv.key), text(kv.value)]), [[k2, 'c1']]);
    want.push(['Delete', k2, '', single.header.revision, 'c1']);
    // one DeleteRange over the whole resource: three keys in two databases, one revision, prev_kvs in key order
    const all = await t.client.deleteRange({ ...underPrefix(SPLIT_PREFIX), prev_kv: true });
    assert.equal(all.deleted, '3');
    assert.deepEqual(all.prev_kvs.map((kv) => [text(kv.key), text(kv.value)]), [[k0, 'a2'], [k1, 'b2'], [k3, 'd1']]);
    for (const [k, v] of [[k0, 'a2'], [k1, 'b2'], [k3, 'd1']] as const) want.push(['Delete', k, '', all.header.revision, v]);
    assert.equal(rev(all), first + 7n, 'one revision per write across both backends, one for the whole DeleteRange');

    const shape = (events: Event[]) => events.map((e) => [e.type, text(e.kv.key), text(e.kv.value), e.kv.mod_revision, e.prev_kv ? text(e.prev_kv.value) : null]);
    const liveEvents = await live.waitForEvents(liveId, want.length);
    const replay = t.client.watch();
    const replayId = (await replay.create({ ...underPrefix(SPLIT_PREFIX), prev_kv: true, start_revision: String(first) })).watch_id;
    const replayed = await replay.waitForEvents(replayId, want.length);
    // one more write, so that an extra event (a duplicate) would have arrived before it
    const fence = rev(await t.client.put({ key: b(splitKey('ns-b', 'fence-Z')), value: b('f') }));
    await untilRevision(live, liveId, fence);
    await untilRevision(replay, replayId, fence);
    for (const [name, w, id] of [['live', live, liveId], ['replayed', replay, replayId]] as const) {
      assert.deepEqual(shape(w.eventsOf(id)).slice(0, -1), want, `${name} events`);
    }
    live.close();
    replay.close();
    await assertSplitStored(t.server, [k0, k1, k2, k3]);
  });
});

/**
 * Watch progress: periodic progress notifications and WatchProgressRequest, which kube-apiserver's
 * consistent reads wait on (so the answer must come promptly and must never claim a revision whose events
 * the stream has not delivered yet).
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { b, rev, underPrefix } from '../support/bytes.js';
import { contractSuite } from '../support/contract.js';
import type { WatchResponse } from '../support/etcd-types.js';

/** The one timed assertion ETCD-COMPAT asks for: a WatchProgressRequest is answered "promptly". */
const PROMPT_MS = 2_000;

const isProgress = (r: WatchResponse) => r.watch_id === '-1' && !r.created && !r.canceled && r.events.length === 0;

await contractSuite('watch progress', (t) => {
  it('progress_notify sends empty responses carrying the current revision on a quiet watch', async () => {
    const p = t.prefix('progress-notify');
    const w = t.client.watch();
    const id = (await w.create({ ...underPrefix(`${p}quiet/`), progress_notify: true })).watch_id;
    // Writes elsewhere move the store revision; the notification must report it although the watch is quiet.
    const r1 = rev(await t.client.put({ key: b(`${p}elsewhere`), value: b('v') }));
    const notice = await w.waitFor(
      `a progress notification at revision >= ${r1}`,
      (rs) => rs.find((r) => r.watch_id === id && !r.created && !r.canceled && rev(r) >= r1),
      15_000,
    );
    assert.deepEqual(notice.events, []);
    assert.equal(rev(notice), r1, 'nothing else was written, so the current revision is r1');
    w.close();
  });

  it('a WatchProgressRequest gets one response with watch_id -1 and the current revision, promptly', async () => {
    const p = t.prefix('progress-request');
    const w = t.client.watch();
    const ids: string[] = [];
    for (const s of ['a/', 'b/', 'c/']) ids.push((await w.create(underPrefix(p + s))).watch_id);
    const r1 = rev(await t.client.put({ key: b(`${p}elsewhere`), value: b('v') }));
    w.requestProgress();
    const progress = await w.waitFor('the WatchProgressRequest response', (rs) => rs.find(isProgress), PROMPT_MS);
    assert.equal(rev(progress), r1);
    assert.equal(progress.watch_id, '-1');
    // One request, one answer (not one per watch): by the time a later event arrives, count them.
    const r2 = rev(await t.client.put({ key: b(`${p}a/k`), value: b('v') }));
    await w.waitFor(`the event at ${r2}`, () => (w.eventsOf(ids[0]!).length > 0 ? true : undefined));
    assert.equal(w.responses.filter(isProgress).length, 1);
    w.close();
  });

  it(
    'a WatchProgressRequest response is never ahead of an event the stream has not delivered',
    {
      skip: t.deviation(
        'it answers a WatchProgressRequest on a separate control path with the store revision, which can overtake ' +
          'buffered events (fixed in later etcd); seen: "progress at 82 arrived before the event at 77" in 2 of 5 runs',
      ),
    },
    async () => {
      const p = t.prefix('progress-order');
      const w = t.client.watch();
      const id = (await w.create(underPrefix(p))).watch_id;
      const r0 = rev(await t.client.range({ key: b(p) }));
      // Bounded load: 8 writers × 40 puts, progress requested throughout.
      let writing = true;
      const writers = Array.from({ length: 8 }, async (_, wi) => {
        const c = t.newClient();
        for (let i = 0; i < 40; i++) await c.put({ key: b(`${p}${wi}/${i}`), value: Buffer.alloc(2048, 0x61) });
      });
      const requester = (async () => {
        for (let i = 0; writing && i < 2_000; i++) {
          w.requestProgress();
          await sleep(3);
        }
      })();
      await Promise.all(writers);
      writing = false;
      await requester;
      const last = rev(await t.client.range({ key: b(p) }));
      assert.equal(last, r0 + 320n);
      w.requestProgress();
      // The final request must eventually report `last`, after all 320 events.
      await w.waitFor('a progress response at the last revision', (rs) => rs.find((r) => isProgress(r) && rev(r) === last), 20_000);

      const delivered = new Set<bigint>();
      let checked = 0;
      for (const res of w.responses) {
        if (res.watch_id === id) for (const e of res.events) delivered.add(BigInt(e.kv.mod_revision));
        if (!isProgress(res)) continue;
        checked++;
        const at = rev(res);
        for (let r = r0 + 1n; r <= at; r++) {
          assert.ok(delivered.has(r), `progress at ${at} arrived before the event at ${r}`);
        }
      }
      assert.ok(checked >= 1);
      assert.equal(delivered.size, 320);
      w.close();
    },
  );
});

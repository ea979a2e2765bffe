/**
 * Watch delivery under pressure: a client that stops reading must not hold up writers or other watchers,
 * and must later receive every event, in order, with no revision split across responses; history older
 * than the server's memory is replayed from the database the same way.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { metricValue } from '../support/metrics.js';
import { Middleware } from '../support/middleware.js';
import { EtcdClient } from '../support/grpc.js';
import type * as T from '../support/etcd-types.js';
import { waitUntil } from '../support/wait.js';

const b = (s: string) => Buffer.from(s);

/** Asserts events are in revision order, each (revision, key) once, and no revision spans two responses. */
function assertWholeRevisions(responses: T.WatchResponse[], watchId: string): T.Event[] {
  const mine = responses.filter((r) => r.watch_id === watchId && r.events.length > 0);
  const responseOfRevision = new Map<string, number>();
  mine.forEach((r, i) => {
    for (const e of r.events) {
      const rev = e.kv!.mod_revision;
      const seen = responseOfRevision.get(rev);
      assert.ok(seen === undefined || seen === i, `revision ${rev} is split across responses ${seen} and ${i}`);
      responseOfRevision.set(rev, i);
    }
  });
  const events = mine.flatMap((r) => r.events);
  for (let i = 1; i < events.length; i++) {
    assert.ok(BigInt(events[i]!.kv!.mod_revision) >= BigInt(events[i - 1]!.kv!.mod_revision), 'events in revision order');
  }
  const ids = events.map((e) => `${e.kv!.mod_revision}/${e.kv!.key.toString()}`);
  assert.equal(new Set(ids).size, ids.length, 'no event delivered twice');
  return events;
}

/** Writes `txns` transactions of `perTxn` puts each (one revision per transaction). */
async function writeTxns(client: EtcdClient, prefix: string, txns: number, perTxn: number, valueBytes: number): Promise<void> {
  const value = Buffer.alloc(valueBytes, 'x');
  for (let t = 0; t < txns; t++) {
    await client.txn({
      success: Array.from({ length: perTxn }, (_, i) => ({ request_put: { key: b(`${prefix}${t}/${i}`), value } })),
    });
  }
}

describe('watch catch-up', () => {
  let dir: string;
  let mw: Middleware;
  let client: EtcdClient;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'hk-watch-'));
    mw = await Middleware.start({ endpoint: `sqlite://${dir}/state.db`, compactInterval: '0' });
    client = new EtcdClient(mw.address);
  });

  after(async () => {
    client?.close();
    await mw?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a client that stops reading holds up neither writers nor other watchers, then gets everything', async () => {
    const prefix = 'slow/';
    const range = { key: b(prefix), range_end: b('slow0'), prev_kv: true };
    const slow = client.watch();
    const slowId = (await slow.create(range)).watch_id;
    const fast = client.watch();
    const fastId = (await fast.create(range)).watch_id;
    slow.pause();

    const txns = 40;
    const perTxn = 50; // 2,000 events of 4 KiB: far more than HTTP/2 flow control lets through unread
    await writeTxns(client, prefix, txns, perTxn, 4096);
    await fast.waitForEvents(fastId, txns * perTxn, 30_000);

    const lagging = await waitUntil('the paused watcher to be reported lagging', async () => {
      const n = await metricValue(mw, 'harikube_watchers_lagging');
      return n !== undefined && n >= 1 ? n : undefined;
    });
    assert.ok(lagging >= 1);

    slow.resume();
    await slow.waitForEvents(slowId, txns * perTxn, 30_000);
    const events = assertWholeRevisions(slow.responses, slowId);
    assert.equal(events.length, txns * perTxn);
    assertWholeRevisions(fast.responses, fastId);
    slow.close();
    fast.close();
  });

  it('history from before a restart is replayed from the database, whole revisions per response', async () => {
    const prefix = 'history/';
    const start = BigInt((await client.range({ key: b(prefix) })).header.revision) + 1n;
    const txns = 30;
    const perTxn = 100; // 3,000 rows: more than one storage read of catch-up
    await writeTxns(client, prefix, txns, perTxn, 64);
    await client.deleteRange({ key: b(`${prefix}0/`), range_end: b(`${prefix}0/~`) });
    await mw.stop();
    await mw.restart();
    client.close();
    client = new EtcdClient(mw.address);

    const w = client.watch();
    const id = (await w.create({ key: b(prefix), range_end: b('history0'), start_revision: String(start), prev_kv: true })).watch_id;
    await w.waitForEvents(id, txns * perTxn + perTxn, 30_000);
    const events = assertWholeRevisions(w.responses, id);
    assert.equal(events.length, txns * perTxn + perTxn);
    const deletes = events.filter((e) => e.type === 'Delete');
    assert.equal(deletes.length, perTxn);
    for (const d of deletes) {
      assert.ok(d.prev_kv, 'a replayed delete carries prev_kv');
      assert.equal(d.prev_kv.value.length, 64);
    }
    const creates = events.filter((e) => e.type === 'Put');
    for (const c of creates) {
      assert.equal(c.kv!.create_revision, c.kv!.mod_revision);
      assert.equal(c.prev_kv, null, 'a create has no prev_kv');
    }
    w.close();
  });
});

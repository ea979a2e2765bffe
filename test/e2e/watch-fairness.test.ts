/**
 * Watch catch-up is fair to requests: while 200 watchers replay 25,000 events from the database (the
 * middleware restarted, so none of them is in memory), a Range on the same connection and on another
 * connection is answered within a bound far below what a replay that monopolises the event loop or the
 * connection costs (seconds). This is not a speed test: the bounds are loose for 2 busy shared cores, and
 * etcd answers such a Range in 15-200 ms.
 *
 * The watching client does not decode events (it only counts them from the top-level protobuf fields), so
 * the test's own CPU use stays small next to the server's.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { EtcdClient } from '../support/grpc.js';
import { Middleware } from '../support/middleware.js';

const WATCHERS = 200;
const TXNS = 250;
const PER_TXN = 100; // 25,000 events
/** Slowest Range answer accepted while watchers replay (etcd: ~0.2 s on the same connection, 15 ms on another). */
const SAME_CONNECTION_BOUND_MS = 2_000;
const OTHER_CONNECTION_BOUND_MS = 1_000;
/** Probing stops when the replay is complete or after this long (the replay itself is not timed). */
const PROBE_WINDOW_MS = 10_000;

const b = (s: string) => Buffer.from(s);

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

function field(tag: number, bytes: Buffer): Buffer {
  return Buffer.concat([varint(tag), varint(bytes.length), bytes]);
}

/** WatchRequest{create_request{key, range_end, start_revision}} */
function watchCreate(key: Buffer, rangeEnd: Buffer, startRevision: number): Buffer {
  const create = Buffer.concat([field(0x0a, key), field(0x12, rangeEnd), varint(0x18), varint(startRevision)]);
  return field(0x0a, create);
}

/** Events (field 11) in one WatchResponse, read from its top-level fields without decoding them. */
function countEvents(msg: Buffer): number {
  let n = 0;
  let i = 0;
  const readVarint = () => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const byte = msg[i++]!;
      v += (byte & 0x7f) * mul;
      if (byte < 0x80) return v;
      mul *= 128;
    }
  };
  while (i < msg.length) {
    const tag = readVarint();
    const wire = tag & 7;
    if (wire === 0) readVarint();
    else if (wire === 2) {
      const len = readVarint();
      if (tag >>> 3 === 11) n++;
      i += len;
    } else throw new Error(`unexpected wire type ${wire} in a WatchResponse`);
  }
  return n;
}

/** A raw client on its own connection: watches (events counted, not decoded) and timed Ranges. */
class RawConnection {
  readonly client: grpc.Client;
  constructor(address: string) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
    });
  }

  /** Milliseconds until a Range of `key` is answered. */
  timedRange(key: Buffer): Promise<number> {
    const started = performance.now();
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        '/etcdserverpb.KV/Range',
        (r: Buffer) => r,
        (r: Buffer) => r,
        field(0x0a, key),
        (err) => (err ? reject(err) : resolve(performance.now() - started)),
      );
    });
  }

  watch(onEvents: (n: number) => void): grpc.ClientDuplexStream<Buffer, Buffer> {
    const call = this.client.makeBidiStreamRequest('/etcdserverpb.Watch/Watch', (r: Buffer) => r, (r: Buffer) => r);
    call.on('data', (msg: Buffer) => onEvents(countEvents(msg)));
    call.on('error', () => undefined);
    return call;
  }

  close(): void {
    this.client.close();
  }
}

describe('watch catch-up fairness', () => {
  let dir: string;
  let mw: Middleware;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'hk-fair-'));
    mw = await Middleware.start({ endpoint: `sqlite://${dir}/state.db`, compactInterval: '0' });
    const client = new EtcdClient(mw.address);
    const value = Buffer.alloc(16, 'v');
    for (let t = 0; t < TXNS; t++) {
      await client.txn({ success: Array.from({ length: PER_TXN }, (_, i) => ({ request_put: { key: b(`/fair/${t}/${i}`), value } })) });
    }
    client.close();
    // nothing in memory: every watcher replays from the database
    await mw.stop();
    await mw.restart();
  });

  after(async () => {
    await mw?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`a Range is answered within ${SAME_CONNECTION_BOUND_MS} ms (same connection) and ${OTHER_CONNECTION_BOUND_MS} ms (another) while ${WATCHERS} watchers replay ${TXNS * PER_TXN} events`, { timeout: PROBE_WINDOW_MS + 60_000 }, async (t) => {
    const watching = new RawConnection(mw.address);
    const other = new RawConnection(mw.address);
    try {
      // warm both connections (and the server's code paths) before measuring
      await watching.timedRange(b('/fair/0/0'));
      await other.timedRange(b('/fair/0/0'));
      let received = 0;
      const expected = WATCHERS * TXNS * PER_TXN;
      let done!: () => void;
      const replayed = new Promise<void>((resolve) => (done = resolve));
      const call = watching.watch((n) => {
        received += n;
        if (received >= expected) done();
      });
      for (let w = 0; w < WATCHERS; w++) call.write(watchCreate(b('/fair/'), b('/fair0'), 2));

      const same: number[] = [];
      const others: number[] = [];
      let replaying = true;
      const started = performance.now();
      const probe = async () => {
        while (replaying) {
          const [a, o] = await Promise.all([watching.timedRange(b('/fair/1/1')), other.timedRange(b('/fair/1/1'))]);
          same.push(a);
          others.push(o);
          await new Promise((r) => setTimeout(r, 100));
        }
      };
      const probing = probe();
      await Promise.race([replayed, new Promise((r) => setTimeout(r, PROBE_WINDOW_MS))]);
      replaying = false;
      await probing;
      call.cancel();
      const max = (xs: number[]) => Math.round(Math.max(...xs));
      t.diagnostic(
        `${received} of ${expected} events replayed in ${Math.round(performance.now() - started)} ms; ${same.length} probes; ` +
          `Range latency max same connection ${max(same)} ms, other connection ${max(others)} ms`,
      );
      assert.ok(same.length >= 3, `at least three probes while replaying (got ${same.length})`);
      assert.ok(received > 0, 'the watchers were replaying');
      assert.ok(max(same) <= SAME_CONNECTION_BOUND_MS, `a Range on the watching connection took ${max(same)} ms (bound ${SAME_CONNECTION_BOUND_MS})`);
      assert.ok(max(others) <= OTHER_CONNECTION_BOUND_MS, `a Range on another connection took ${max(others)} ms (bound ${OTHER_CONNECTION_BOUND_MS})`);
    } finally {
      watching.close();
      other.close();
    }
  });
});

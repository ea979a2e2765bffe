/**
 * Watch delivery latency: `watchers` Watch streams on one prefix (spread over the connection pool, as
 * kube-apiserver's watch caches share a few connections), one writer putting keys at a steady pace on its
 * own connection. Latency = event receipt at a watcher - the moment its Put was sent, for every watcher and
 * event. Paced rather than closed-loop: the question is delivery delay at a kube-like write rate, not how
 * many events per second fan out before queues build.
 */
import type grpc from '@grpc/grpc-js';
import { setTimeout as sleep } from 'node:timers/promises';
import type * as T from '../test/support/etcd-types.js';
import { waitUntil } from '../test/support/wait.js';
import { Connection, ConnectionPool, MAX_CONNECTIONS } from './client.js';
import { keyOf, rangeOf, VALUE_256 } from './data.js';
import { summarize } from './stats.js';
import type { PreparedRow, RowResult, Workload } from './workload.js';

export interface WatchBounds {
  watchers: number;
  /** Puts in the measured phase (each yields `watchers` samples). */
  events: number;
  /** Gap between put sends. */
  intervalMs: number;
  /** Bound on the measured phase, delivery wait included. */
  maxMs: number;
}

/** How long the last events may take to arrive before the missing ones count as errors. */
const DRAIN_MS = 5_000;

export function watchRow(bounds: WatchBounds): Workload {
  return {
    name: `watch-${bounds.watchers}`,
    what: `put -> event latency at ${bounds.watchers} watchers of one prefix, one put every ${bounds.intervalMs} ms`,
    latencyRow: true,
    prepare: (address, prefix) => prepareWatch(address, prefix, bounds),
  };
}

async function prepareWatch(address: string, prefix: string, bounds: WatchBounds): Promise<PreparedRow> {
  const pool = new ConnectionPool(address, MAX_CONNECTIONS);
  const writer = new Connection(address);
  const streams: grpc.ClientDuplexStream<T.WatchRequest, T.WatchResponse>[] = [];
  const sentAt = new Map<string, number>();
  let latencies: number[] = [];
  let recording = false;
  let delivered = 0;
  let created = 0;
  let closing = false;
  let failure: Error | undefined;
  let lastDelivery = 0;

  const close = () => {
    closing = true;
    for (const s of streams) {
      s.end();
      s.cancel();
    }
    pool.close();
    writer.close();
  };

  try {
    await Promise.all([pool.ready(), writer.ready()]);
    for (let i = 0; i < bounds.watchers; i++) {
      const s = pool.of(i).watch();
      s.on('data', (res: T.WatchResponse) => {
        if (res.created) created++;
        if (res.canceled) failure ??= new Error(`watch canceled: ${res.cancel_reason}`);
        const now = performance.now();
        for (const ev of res.events) {
          const sent = sentAt.get(ev.kv.key.toString());
          if (sent === undefined) continue;
          delivered++;
          lastDelivery = now;
          if (recording) latencies.push(now - sent);
        }
      });
      s.on('error', (err: Error) => {
        if (!closing) failure ??= err;
      });
      s.write({ create_request: { ...rangeOf(prefix), prev_kv: true } });
      streams.push(s);
    }
    await waitUntil(`${bounds.watchers} watches created`, () => (failure ? Promise.reject(failure) : created >= bounds.watchers ? true : undefined), {
      timeoutMs: 15_000,
      intervalMs: 20,
    });
  } catch (err) {
    close();
    throw err;
  }

  /** Sends `events` paced puts under prefix/phase/ and waits (bounded) for every watcher to see them. */
  const phase = async (name: string, events: number, maxMs: number): Promise<RowResult> => {
    latencies = [];
    delivered = 0;
    sentAt.clear();
    const start = performance.now();
    const deadline = start + maxMs;
    let sent = 0;
    for (let i = 0; i < events && performance.now() < deadline - DRAIN_MS && !failure; i++) {
      const key = keyOf(`${prefix}${name}/`, i);
      sentAt.set(key.toString(), performance.now());
      await writer.put({ key, value: VALUE_256 });
      sent++;
      const wait = start + (i + 1) * bounds.intervalMs - performance.now();
      if (wait > 0) await sleep(wait);
    }
    const expected = sent * bounds.watchers;
    await waitUntil(`${expected} watch events`, () => (delivered >= expected || failure ? true : undefined), {
      timeoutMs: DRAIN_MS,
      intervalMs: 5,
    }).catch(() => undefined);
    if (failure) throw failure;
    const seconds = ((delivered ? lastDelivery : performance.now()) - start) / 1000;
    const missing = expected - delivered;
    return { ...summarize(latencies, delivered, seconds, missing), ...(missing ? { firstError: `${missing} events not delivered within ${DRAIN_MS} ms` } : {}) };
  };

  return {
    warmup: async () => {
      const r = await phase('warmup', 20, 10_000);
      if (r.errors) throw new Error(`watch warmup: ${r.firstError}`);
    },
    measure: async () => {
      recording = true;
      try {
        return await phase('measure', bounds.events, bounds.maxMs);
      } finally {
        recording = false;
      }
    },
    close,
  };
}

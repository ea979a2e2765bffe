/**
 * etcdserverpb.Watch: one `WatchStream` per client stream, holding that stream's watchers and writing
 * every response in order (created, events, progress, cancel) so etcd's ordering guarantees hold:
 * `created` before the watcher's events, events in revision order, progress never ahead of an undelivered
 * event. Responses are pre-encoded bytes (events are encoded once for all watchers).
 */
import * as grpc from '@grpc/grpc-js';
import { Gauge } from 'prom-client';
import { id, num } from '../mvcc/api.js';
import { rangeEnd } from '../mvcc/key-range.js';
import type { Store } from '../mvcc/store.js';
import type { WatchEvent } from '../mvcc/watch-event.js';
import { Watcher, type WatchHub, type WatchSink } from '../mvcc/watch-hub.js';
import { registry } from '../metrics.js';
import { logger } from '../log.js';
import { countStreamRequest } from './rpc.js';
import { encodeEvent, encodeHeader, encodeWatchResponse } from './wire.js';

/** Events per response at most; larger batches are split at revision boundaries. */
const MAX_EVENTS_PER_RESPONSE = 1000;
/** Bytes per response at most (clients default to 4 MiB receive limits); split at revision boundaries. */
const MAX_RESPONSE_BYTES = 1024 * 1024;

interface WatchCreateRequest {
  key: Buffer;
  range_end: Buffer;
  start_revision: string;
  progress_notify: boolean;
  filters: string[];
  prev_kv: boolean;
  watch_id: string;
  fragment: boolean;
}

interface WatchRequest {
  create_request?: WatchCreateRequest | null;
  cancel_request?: { watch_id: string } | null;
  progress_request?: object | null;
}

const log = logger.child({ component: 'watch' });
let streams = 0;

export function registerWatchMetrics(hub: () => WatchHub): void {
  new Gauge({
    name: 'harikube_watchers',
    help: 'Open watchers.',
    registers: [registry],
    collect() {
      this.set(hub().watcherCount);
    },
  });
  new Gauge({
    name: 'harikube_watchers_lagging',
    help: 'Watchers catching up (from the event ring or storage) instead of receiving events live.',
    registers: [registry],
    collect() {
      this.set(hub().laggingCount);
    },
  });
  new Gauge({
    name: 'harikube_watch_streams',
    help: 'Open watch streams.',
    registers: [registry],
    collect() {
      this.set(streams);
    },
  });
}

type WatchCall = grpc.ServerDuplexStream<WatchRequest, Buffer>;

class WatchStream implements WatchSink {
  private readonly watchers = new Map<string, Watcher>();
  private nextAutoId = 0;
  congested = false;
  private drainWaiters: (() => void)[] = [];
  private progressDeferred = false;
  closed = false;

  constructor(
    private readonly call: WatchCall,
    private readonly store: Store,
  ) {
    streams++;
    call.on('data', (req: WatchRequest) => this.onRequest(req));
    call.on('end', () => {
      this.close();
      call.end();
    });
    call.on('error', () => this.close());
    call.on('cancelled', () => this.close());
    call.on('drain', () => {
      this.congested = false;
      for (const fn of this.drainWaiters.splice(0)) fn();
    });
  }

  private get hub(): WatchHub {
    return this.store.hub;
  }

  private header(revision = this.hub.revision): Buffer {
    return encodeHeader(this.store.header(revision));
  }

  private write(buf: Buffer): void {
    if (this.closed) return;
    if (!this.call.write(buf)) this.congested = true;
  }

  private onRequest(req: WatchRequest): void {
    try {
      if (req.create_request) this.create(req.create_request);
      else if (req.cancel_request) this.cancel(id(req.cancel_request.watch_id));
      else if (req.progress_request) this.requestProgress();
    } catch (err) {
      log.error('bad watch request', { error: err });
    }
  }

  private create(c: WatchCreateRequest): void {
    countStreamRequest('Watch.Create');
    const key = c.key ?? Buffer.alloc(0);
    const end = rangeEnd(c.range_end);
    if (end !== undefined && end.length > 0 && Buffer.compare(key, end) >= 0) {
      // etcd refuses a range that holds no key (key >= range_end), before it looks at the ID: created and canceled at once, ID -1
      this.write(encodeWatchResponse({ header: this.header(), watchId: '-1', created: true, canceled: true, cancelReason: 'mvcc: watcher range is empty' }));
      return;
    }
    let watchId = id(c.watch_id);
    if (watchId !== '0' && this.watchers.has(watchId)) {
      // etcd answers a duplicate client-chosen ID with a created-and-canceled response
      this.write(
        encodeWatchResponse({
          header: this.header(),
          watchId: '-1',
          created: true,
          canceled: true,
          cancelReason: 'mvcc: duplicate watch ID provided on the WatchStream',
        }),
      );
      return;
    }
    if (watchId === '0') {
      while (this.watchers.has(String(this.nextAutoId))) this.nextAutoId++;
      watchId = String(this.nextAutoId++);
    }
    const start = num(c.start_revision);
    const filters = c.filters ?? [];
    const w = new Watcher(
      watchId,
      key,
      end,
      {
        prevKv: c.prev_kv,
        noPut: filters.includes('Noput'),
        noDelete: filters.includes('Nodelete'),
        progressNotify: c.progress_notify,
      },
      // 0: from now on. A negative start is kept, as etcd keeps it: below every compact revision (etcd's is
      // -1 before the first compaction), the watch is canceled as compacted.
      start !== 0 ? start : this.hub.revision + 1,
      this,
    );
    this.watchers.set(watchId, w);
    this.write(encodeWatchResponse({ header: this.header(), watchId, created: true }));
    this.hub.add(w);
  }

  private cancel(watchId: string): void {
    countStreamRequest('Watch.Cancel');
    const w = this.watchers.get(watchId);
    if (!w) return;
    this.hub.remove(w);
    this.watchers.delete(watchId);
    this.write(encodeWatchResponse({ header: this.header(), watchId, canceled: true }));
    this.maybeSendDeferredProgress();
  }

  private allSynced(): boolean {
    for (const w of this.watchers.values()) if (!w.synced) return false;
    return true;
  }

  /**
   * WatchProgressRequest: answered with watch_id -1 at the current revision, but only once every watcher
   * on this stream is synced, so the revision is never ahead of an event still to be delivered.
   */
  private requestProgress(): void {
    countStreamRequest('Watch.Progress');
    if (this.allSynced()) this.write(encodeWatchResponse({ header: this.header(), watchId: '-1' }));
    else this.progressDeferred = true;
  }

  private maybeSendDeferredProgress(): void {
    if (this.progressDeferred && this.allSynced()) {
      this.progressDeferred = false;
      this.write(encodeWatchResponse({ header: this.header(), watchId: '-1' }));
    }
  }

  deliver(w: Watcher, events: WatchEvent[], revision: number): boolean {
    if (this.closed || !this.watchers.has(w.id)) return true;
    const header = this.header(revision);
    let batch: Buffer[] = [];
    let bytes = 0;
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      const b = encodeEvent(e, w.options.prevKv);
      batch.push(b);
      bytes += b.length;
      const next = events[i + 1];
      const revisionEnds = !next || next.revision !== e.revision;
      if (revisionEnds && (batch.length >= MAX_EVENTS_PER_RESPONSE || bytes >= MAX_RESPONSE_BYTES)) {
        this.write(encodeWatchResponse({ header, watchId: w.id, events: batch }));
        batch = [];
        bytes = 0;
      }
    }
    if (batch.length) this.write(encodeWatchResponse({ header, watchId: w.id, events: batch }));
    return !this.congested;
  }

  compacted(w: Watcher, compactRevision: number): void {
    this.watchers.delete(w.id);
    // etcd's compaction cancel carries revision 0 in its header
    this.write(encodeWatchResponse({ header: this.header(0), watchId: w.id, canceled: true, compactRevision }));
    this.maybeSendDeferredProgress();
  }

  drained(): Promise<void> {
    if (!this.congested || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  synced(): void {
    this.maybeSendDeferredProgress();
  }

  progress(w: Watcher, revision: number): void {
    this.write(encodeWatchResponse({ header: this.header(revision), watchId: w.id }));
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    streams--;
    for (const w of this.watchers.values()) this.hub.remove(w);
    this.watchers.clear();
    for (const fn of this.drainWaiters.splice(0)) fn();
  }
}

/** The Watch service definition with pre-encoded responses passed through untouched. */
export function watchDefinition(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const watch = def.Watch!;
  return { Watch: { ...watch, responseSerialize: (b: Buffer) => b } } as grpc.ServiceDefinition;
}

export function watchService(store: Store): grpc.UntypedServiceImplementation {
  return {
    Watch: (call: WatchCall) => {
      new WatchStream(call, store);
    },
  };
}

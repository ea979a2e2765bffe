/**
 * Fan-out of committed changes to watchers (docs/architecture.md, "Watch hub").
 *
 * The store publishes events once the commit watermark passes them, in revision order. Recent events stay
 * in a bounded in-memory ring. A watcher is either synced (receives events as they are published) or
 * catching up (replayed from the ring, or from storage when the ring no longer reaches back far enough).
 * A watcher whose stream cannot keep up is taken out of the synced set and caught up once its stream
 * drains, so a slow client never holds up writers or other watchers. No polling anywhere.
 */
import type { Backend } from '../backends/backend.js';
import { WatchEvent } from './watch-event.js';
import { inRange } from '../backends/key-range.js';

/** What a watcher's stream must do for the hub. */
export interface WatchSink {
  /** Queues events (whole revisions, in order) for `w`; false when the stream is congested. */
  deliver(w: Watcher, events: WatchEvent[], revision: number): boolean;
  /** The watcher's next revision was compacted: send etcd's cancel with `compact_revision`. */
  compacted(w: Watcher, compactRevision: number): void;
  /** Resolves when the stream can take more (at once when it is not congested). */
  drained(): Promise<void>;
  /** True while the stream cannot take more (deliveries wait for `drained`); absent: never congested. */
  readonly congested?: boolean;
  /** `w` caught up and now receives events live. */
  synced(w: Watcher): void;
  /** Sends a progress notification for `w` at `revision`. */
  progress(w: Watcher, revision: number): void;
  readonly closed: boolean;
}

export interface WatchOptions {
  prevKv: boolean;
  noPut: boolean;
  noDelete: boolean;
  progressNotify: boolean;
}

export class Watcher {
  synced = false;
  removed = false;
  private catchingUp = false;
  /** Set when events were sent since the last progress tick (progress_notify only fires on quiet watchers). */
  sentSinceTick = false;

  constructor(
    /** The watch ID as a decimal string (int64). */
    readonly id: string,
    readonly start: Buffer,
    /** Backend form: undefined = the single key, empty = to the end. */
    readonly end: Buffer | undefined,
    readonly options: WatchOptions,
    /** The next revision this watcher has not been sent. */
    public nextRev: number,
    readonly sink: WatchSink,
  ) {}

  matches(e: WatchEvent): boolean {
    if (e.type === 'Put' ? this.options.noPut : this.options.noDelete) return false;
    return inRange(e.key, this.start, this.end);
  }

  /** Marks the start of catch-up; false when one is already running. */
  beginCatchUp(): boolean {
    if (this.catchingUp) return false;
    this.catchingUp = true;
    return true;
  }

  endCatchUp(): void {
    this.catchingUp = false;
  }
}

const CATCH_UP_RETRY_MS = 1000;

/**
 * Catch-up works in slices of the event loop: after this much work it yields (setImmediate) so requests
 * and live events are served in between, however many watchers replay at once.
 */
const CATCH_UP_SLICE_MS = 4;

/** Bytes of events read from storage for catch-up kept for other watchers at the same position. */
const CHUNK_CACHE_BYTES = 16 * 1024 * 1024;

/** Events of revisions [from, upTo], complete: one step of catch-up. */
interface Chunk {
  upTo: number;
  events: WatchEvent[];
  bytes: number;
}

/** What an event holds in memory, roughly: key, value and previous value, each also encoded once. */
function eventSize(e: WatchEvent): number {
  return 2 * (e.kv.key.length + e.kv.value.length + (e.prevKv?.value.length ?? 0)) + 128;
}

export interface WatchHubOptions {
  backend: Backend;
  /** Watermark at start. */
  revision: number;
  compactRevision: number;
  /** Events kept in memory for catch-up (default 20,000). */
  ringEvents?: number;
  /** Approximate bytes of keys and values the ring may hold (default 32 MiB). */
  ringBytes?: number;
  /** Rows read from storage per catch-up step (default 1,000). */
  catchUpBatch?: number;
  onError?: (err: unknown, w: Watcher) => void;
}

export class WatchHub {
  private readonly ring: WatchEvent[] = [];
  /** Every event with revision >= ringStart is in the ring. */
  private ringStart: number;
  private head: number;
  private compactRev: number;
  private readonly live = new Set<Watcher>();
  private readonly all = new Set<Watcher>();
  private ringSize = 0;
  private readonly ringEvents: number;
  private readonly ringBytes: number;
  private readonly catchUpBatch: number;
  /**
   * Storage reads of catch-up by start revision, shared by every watcher that reaches the same revision (a
   * restarted API server re-opens hundreds of watches at one revision: one read instead of one each).
   */
  private readonly chunks = new Map<number, Promise<Chunk>>();
  private chunkBytes = 0;
  private sliceStarted = 0;

  constructor(private readonly opts: WatchHubOptions) {
    this.head = opts.revision;
    this.ringStart = opts.revision + 1;
    this.compactRev = opts.compactRevision;
    this.ringEvents = opts.ringEvents ?? 20_000;
    this.ringBytes = opts.ringBytes ?? 32 * 1024 * 1024;
    this.catchUpBatch = opts.catchUpBatch ?? 1_000;
  }

  /** The newest revision published (the watermark). */
  get revision(): number {
    return this.head;
  }

  get watcherCount(): number {
    return this.all.size;
  }

  get laggingCount(): number {
    return this.all.size - this.live.size;
  }

  add(w: Watcher): void {
    this.all.add(w);
    if (w.nextRev > this.head && w.nextRev >= this.compactRev) this.goLive(w);
    else void this.catchUp(w);
  }

  remove(w: Watcher): void {
    w.removed = true;
    this.live.delete(w);
    this.all.delete(w);
  }

  /**
   * Lowers nothing: records a new compaction revision (catching-up watchers below it are cancelled). Events
   * at the compaction revision itself lose their prev_kv, as in etcd: the version before them was compacted
   * away, and kube-apiserver treats a watch that starts there as too old only because that prev_kv is missing.
   */
  compacted(revision: number): void {
    if (revision > this.compactRev) {
      for (let i = this.ringIndex(revision); i < this.ring.length && this.ring[i]!.revision === revision; i++) {
        const e = this.ring[i]!;
        if (!e.prevKv) continue;
        const bare = new WatchEvent(e.type, e.kv, undefined, e.revision, e.sub);
        this.ringSize += eventSize(bare) - eventSize(e);
        this.ring[i] = bare;
      }
    }
    this.compactRev = Math.max(this.compactRev, revision);
  }

  /** Committed events up to `revision` (the new watermark), in revision order. */
  publish(events: WatchEvent[], revision: number): void {
    if (revision < this.head) return;
    for (const e of events) {
      this.ring.push(e);
      this.ringSize += eventSize(e);
    }
    this.trimRing();
    this.head = revision;
    if (events.length === 0) return;
    for (const w of this.live) {
      let matching: WatchEvent[] | undefined;
      for (const e of events) {
        if (e.revision >= w.nextRev && w.matches(e)) (matching ??= []).push(e);
      }
      w.nextRev = Math.max(w.nextRev, revision + 1);
      if (!matching) continue;
      w.sentSinceTick = true;
      if (!w.sink.deliver(w, matching, revision)) {
        // the stream is full: stop feeding it live; catch it up from the ring or storage once it drains
        this.live.delete(w);
        w.synced = false;
        void this.catchUp(w);
      }
    }
  }

  /** One progress_notify round: quiet synced watchers that asked for it learn the current revision. */
  progressTick(): void {
    for (const w of this.live) {
      if (w.options.progressNotify && !w.sentSinceTick) w.sink.progress(w, this.head);
      w.sentSinceTick = false;
    }
  }

  private goLive(w: Watcher): void {
    w.nextRev = Math.max(w.nextRev, this.head + 1);
    w.synced = true;
    this.live.add(w);
    w.sink.synced(w);
  }

  private trimRing(): void {
    if (this.ring.length <= this.ringEvents && this.ringSize <= this.ringBytes) return;
    // Down to 1/16 below the limits: the splice moves the whole array, and trimming to the limit itself
    // did it on every publish once the ring was full (4% of the CPU of put-64 on SQLite).
    const events = this.ringEvents - (this.ringEvents >> 4);
    const bytes = this.ringBytes - (this.ringBytes >> 4);
    // drop whole revisions so the ring always holds complete revisions
    let cut = 0;
    let size = this.ringSize;
    while (cut < this.ring.length && (this.ring.length - cut > events || size > bytes)) {
      size -= eventSize(this.ring[cut]!);
      cut++;
    }
    const rev = this.ring[cut - 1]!.revision;
    while (cut < this.ring.length && this.ring[cut]!.revision === rev) size -= eventSize(this.ring[cut++]!);
    this.ring.splice(0, cut);
    this.ringSize = size;
    this.ringStart = rev + 1;
  }

  /** Index of the first ring event at or above `rev`. */
  private ringIndex(rev: number): number {
    let lo = 0;
    let hi = this.ring.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ring[mid]!.revision < rev) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private ringFrom(rev: number): WatchEvent[] {
    return this.ring.slice(this.ringIndex(rev));
  }

  /**
   * Calls `fn` for each published event of revisions (after, upTo], in order. False, without calling it,
   * when the ring does not hold all of them or they are more than `max`.
   */
  eventsBetween(after: number, upTo: number, max: number, fn: (e: WatchEvent) => void): boolean {
    if (after + 1 < this.ringStart || upTo > this.head) return false;
    const from = this.ringIndex(after + 1);
    const to = this.ringIndex(upTo + 1);
    if (to - from > max) return false;
    for (let i = from; i < to; i++) fn(this.ring[i]!);
    return true;
  }

  /** Yields to the event loop once the current slice of catch-up work is used up (see CATCH_UP_SLICE_MS). */
  private async turn(): Promise<void> {
    if (performance.now() - this.sliceStarted < CATCH_UP_SLICE_MS) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (performance.now() - this.sliceStarted >= CATCH_UP_SLICE_MS) this.sliceStarted = performance.now();
  }

  /** At most about `catchUpBatch` ring events from `from`, whole revisions, none above `head`. */
  private ringChunk(from: number, head: number): Chunk {
    const first = this.ringIndex(from);
    let end = this.ringIndex(head + 1);
    if (end - first > this.catchUpBatch) {
      // stop at a revision boundary, past the first revision whatever its size
      end = first + this.catchUpBatch;
      const rev = this.ring[end]!.revision;
      if (this.ring[end - 1]!.revision === rev) {
        const start = this.ringIndex(rev);
        end = start > first ? start : this.ringIndex(rev + 1);
      }
    }
    const events = this.ring.slice(first, end);
    return { upTo: end < this.ring.length ? Math.min(head, this.ring[end]!.revision - 1) : head, events, bytes: 0 };
  }

  /** The next step of catch-up from storage, shared by watchers at the same revision. */
  private storageChunk(from: number, head: number): Promise<Chunk> {
    const cached = this.chunks.get(from);
    if (cached) {
      // most recently used last
      this.chunks.delete(from);
      this.chunks.set(from, cached);
      return cached;
    }
    const read = this.readChunk(from, head);
    this.chunks.set(from, read);
    read.then(
      (chunk) => {
        if (this.chunks.get(from) !== read) return;
        this.chunkBytes += chunk.bytes;
        for (const [rev, p] of this.chunks) {
          if (this.chunkBytes <= CHUNK_CACHE_BYTES || rev === from) break;
          this.chunks.delete(rev);
          void p.then((c) => (this.chunkBytes -= c.bytes), () => undefined);
        }
      },
      () => {
        if (this.chunks.get(from) === read) this.chunks.delete(from);
      },
    );
    return read;
  }

  private async readChunk(from: number, head: number): Promise<Chunk> {
    const rows = await this.opts.backend.changes(from, head, this.catchUpBatch);
    let upTo = head;
    if (rows.length === this.catchUpBatch) {
      // never split a revision: stop before the last one unless it is the only one read
      const last = rows[rows.length - 1]!.modRevision;
      const whole = rows.filter((r) => r.modRevision < last);
      if (whole.length > 0) {
        rows.length = whole.length;
        upTo = last - 1;
      } else {
        const all = await this.opts.backend.changes(last, last, Number.MAX_SAFE_INTEGER);
        rows.splice(0, rows.length, ...all);
        upTo = last;
      }
    }
    const events = rows.map((r) => WatchEvent.fromRow(r, r.prev));
    return { upTo, events, bytes: events.reduce((n, e) => n + eventSize(e), 0) };
  }

  /**
   * Replays what `w` missed, one bounded step at a time, then puts it live. Steps of every catching-up
   * watcher take turns with requests (`turn`), share their storage reads (`storageChunk`), and wait while
   * the watcher's stream is congested, so a replay of any size neither stalls the event loop nor floods
   * the connection ahead of other requests.
   */
  private async catchUp(w: Watcher): Promise<void> {
    if (!w.beginCatchUp()) return;
    try {
      while (!w.removed && !w.sink.closed) {
        await this.turn();
        await w.sink.drained();
        if (w.removed || w.sink.closed) return;
        if (w.nextRev < this.compactRev) {
          this.remove(w);
          w.sink.compacted(w, this.compactRev);
          return;
        }
        const head = this.head;
        if (w.nextRev > head) {
          this.goLive(w);
          return;
        }
        const from = w.nextRev;
        const chunk = from >= this.ringStart ? this.ringChunk(from, head) : await this.storageChunk(from, head);
        if (from < this.compactRev) continue; // compacted while reading: cancel on the next pass
        // another watcher of this stream may have filled it meanwhile: wait, then take the step again
        if (w.removed || w.sink.congested) continue;
        const matching = chunk.events.filter((e) => w.matches(e));
        w.nextRev = chunk.upTo + 1;
        if (matching.length) {
          w.sentSinceTick = true;
          w.sink.deliver(w, matching, head);
        }
      }
    } catch (err) {
      // storage unreachable: keep the watcher and try again; it resumes from the revision it reached
      this.opts.onError?.(err, w);
      if (!w.removed) setTimeout(() => void this.catchUp(w), CATCH_UP_RETRY_MS).unref();
    } finally {
      w.endCatchUp();
    }
  }
}

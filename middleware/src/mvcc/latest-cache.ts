/**
 * The newest row of recently read keys, in memory, so a Range of one key at the watermark (a Get) is
 * answered without a database round trip: on a routed topology that round trip goes to PostgreSQL, an
 * etcd or a child middleware, each a network hop from the server's one event loop.
 *
 * Exact, not approximate: this middleware is the only writer of every database it reads (two middlewares
 * on one database are refused; a child layer takes writes from its parent alone), and every committed
 * write reaches `apply` as the watermark passes it, before a read can see that watermark. So a cached row
 * is the key's newest row at the watermark. A read that missed fills the cache only if no write to the key
 * was published while it read (`beginFill`/`endFill`): its row may be older than the watermark by then.
 * Writes update keys already cached and add none (the working set of reads, not of writes, is kept), and
 * the least recently used rows go first beyond `maxBytes`. Anything that changes the databases without
 * events (a revert handed down to a child layer, a failed batch resolved) clears the whole cache.
 */
import type { KeyRow } from '../backends/backend.js';
import { storeMetrics } from './metrics.js';
import type { WatchEvent } from './watch-event.js';

/** Counted on every Get: the labelled children are looked up once, not per call. */
const hits = storeMetrics.readCacheRequests.labels('hit');
const misses = storeMetrics.readCacheRequests.labels('miss');

/** Bytes counted per entry besides key and value (the Map entry, the row object). */
const ENTRY_OVERHEAD = 160;

/** A read that missed, filling the cache with what it read unless a write to its key came first. */
export interface Fill {
  readonly id: string;
}

/** `id`: the latin1 key, one character per byte. */
function entryBytes(id: string, row: KeyRow | null): number {
  return ENTRY_OVERHEAD + id.length + (row ? row.value.length : 0);
}

export class LatestCache {
  /** latin1 key -> newest row, null when the key has no live version. Map order is recency of use. */
  private readonly rows = new Map<string, KeyRow | null>();
  /** Fills in flight, by key: how many, and whether a write to the key was published meanwhile. */
  private readonly fills = new Map<string, { reads: number; stale: boolean }>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get enabled(): boolean {
    return this.maxBytes > 0;
  }

  /** The key's newest row at the watermark: a row, null for no live key, undefined when not cached. */
  get(key: Buffer): KeyRow | null | undefined {
    const id = key.toString('latin1');
    const row = this.rows.get(id);
    if (row === undefined) {
      misses.inc();
      return undefined;
    }
    // most recently used last
    this.rows.delete(id);
    this.rows.set(id, row);
    hits.inc();
    return row;
  }

  /** Call in the same synchronous step that takes the watermark the read will read at. */
  beginFill(key: Buffer): Fill {
    const id = key.toString('latin1');
    const f = this.fills.get(id);
    if (f) f.reads++;
    else this.fills.set(id, { reads: 1, stale: false });
    return { id };
  }

  /**
   * What the read found (undefined: no live key; `ok` false: the read failed), cached unless a write to the
   * key was published meanwhile.
   */
  endFill(fill: Fill, row: KeyRow | undefined, ok: boolean): void {
    const f = this.fills.get(fill.id);
    if (!f) return;
    if (--f.reads === 0) this.fills.delete(fill.id);
    if (!ok || f.stale || !this.enabled) return;
    // copies: the row's buffers may be views of a much larger read that the cache must not keep alive
    this.set(fill.id, row ? { ...row, key: Buffer.from(row.key), value: Buffer.from(row.value) } : null);
  }

  /** Committed events, as the watermark passes them: cached keys take their new row. */
  apply(events: readonly WatchEvent[]): void {
    if (this.rows.size === 0 && this.fills.size === 0) return;
    for (const ev of events) {
      const id = ev.key.toString('latin1');
      const f = this.fills.get(id);
      if (f) f.stale = true;
      if (!this.rows.has(id)) continue;
      this.set(id, ev.type === 'Delete' ? null : rowOf(ev));
    }
  }

  /** Forgets every row, and makes reads in flight not fill (the databases changed without events). */
  clear(): void {
    this.rows.clear();
    for (const f of this.fills.values()) f.stale = true;
    this.bytes = 0;
    storeMetrics.readCacheBytes.set(0);
  }

  private set(id: string, row: KeyRow | null): void {
    const old = this.rows.get(id);
    if (old !== undefined) {
      this.bytes -= entryBytes(id, old);
      this.rows.delete(id);
    }
    this.rows.set(id, row);
    this.bytes += entryBytes(id, row);
    for (const [oldest, r] of this.rows) {
      if (this.bytes <= this.maxBytes) break;
      this.rows.delete(oldest);
      this.bytes -= entryBytes(oldest, r);
    }
    storeMetrics.readCacheBytes.set(this.bytes);
  }
}

/** The row an event wrote (only what a Range answers with: the prev and sub of a row are not read). */
function rowOf(ev: WatchEvent): KeyRow {
  const kv = ev.kv;
  return {
    key: Buffer.from(kv.key),
    value: Buffer.from(kv.value),
    modRevision: Number(kv.mod_revision),
    sub: ev.sub,
    createRevision: Number(kv.create_revision),
    prevRevision: 0,
    version: Number(kv.version),
    lease: String(kv.lease),
    deleted: false,
  };
}

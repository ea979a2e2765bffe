/**
 * Which keys the database behind a backend reached by RPC (a child middleware, an etcd) may hold rows of,
 * so a write batch that creates keys the database never held (new objects, Events) does not ask it first:
 * without it every batch of creates costs a `Latest` round trip before it can be applied.
 *
 * Exact in the direction that matters: a key reported absent has no row there, live or tombstone. Every
 * key with a row was either there when the scan read it, or was written or copied in by this
 * middleware since this set was created (added before the write is sent, so a write whose outcome is
 * unknown counts too): only this middleware writes to that database. Keys are kept as 32-bit fingerprints
 * in an open-addressing table (about 8 bytes per key): two keys may share one, and a key then counts as
 * present and is asked for, as before. Rows removed (reverts, compaction, keys moved away) leave their keys
 * counted as present. Until the scan has read the whole database, every key counts as present. The scan
 * starts with the backend's first write transaction: by then no backend of an older topology (the same
 * database under other connection settings) writes to it any more.
 */
import { logger } from '../log.js';
import type { KeyRow } from './backend.js';
import { keyAfter } from './key-range.js';

const log = logger.child({ component: 'backend' });

/** Keys per page of the scan. */
const SCAN_KEYS = 5000;

/** Wait before the scan is tried again after a failure (the database down, say). */
const WRITTEN_KEYS_RETRY_MS = 5000;

/** One page of the database's keys from `start` on, tombstones included (`KeyMoves.rangeWithTombstones`). */
export type KeyScan = (start: Buffer, limit: number) => Promise<KeyRow[]>;

/** FNV-1a over the key's bytes; never 0 (the empty slot). */
function fingerprintOf(key: Buffer): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key[i]!, 0x01000193);
  return h >>> 0 || 1;
}

/** The same over a latin1 key id (one character per byte). */
function fingerprintOfId(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return h >>> 0 || 1;
}

export class WrittenKeys {
  private table = new Uint32Array(1024);
  private count = 0;
  private state: 'unloaded' | 'loading' | 'loaded' = 'unloaded';
  /** Set by `loadInBackground` until it stops (loaded, or the backend closed). */
  private started = false;

  /** Whether the scan has read the whole database (before that, every key counts as present). */
  get loaded(): boolean {
    return this.state === 'loaded';
  }

  /** Before a row of `key` is written or copied in. */
  add(key: Buffer): void {
    this.insert(fingerprintOf(key));
  }

  /** False only when the database certainly holds no row of the key (latin1 id). */
  mayHold(id: string): boolean {
    if (this.state !== 'loaded') return true;
    const fp = fingerprintOfId(id);
    const mask = this.table.length - 1;
    for (let i = fp & mask; ; i = (i + 1) & mask) {
      const slot = this.table[i]!;
      if (slot === fp) return true;
      if (slot === 0) return false;
    }
  }

  /**
   * Reads every key of the database with `scan`, page by page, while writes go on (they add their keys
   * themselves). Resolves true once every key was read; false when a page failed (the keys stay counted as
   * present: the caller may try again later).
   */
  async load(scan: KeyScan): Promise<boolean> {
    if (this.state !== 'unloaded') return this.state === 'loaded';
    this.state = 'loading';
    try {
      let start: Buffer = Buffer.alloc(1);
      for (;;) {
        const rows = await scan(start, SCAN_KEYS);
        for (const r of rows) this.add(r.key);
        if (rows.length < SCAN_KEYS) break;
        start = keyAfter(rows[rows.length - 1]!.key);
      }
      this.state = 'loaded';
      return true;
    } catch {
      this.state = 'unloaded';
      return false;
    }
  }

  /**
   * `load` in the background, again every few seconds while it fails, until it succeeds or `open` says the
   * backend was closed (a reopened backend calls this again). Called more than once, it starts only once.
   */
  loadInBackground(scan: KeyScan, open: () => boolean, description: string): void {
    if (this.started || this.state === 'loaded') return;
    this.started = true;
    const attempt = async (): Promise<void> => {
      if (!open()) {
        this.started = false;
        return;
      }
      const began = performance.now();
      if (await this.load(scan)) {
        this.started = false;
        // creates there are answered without a read from now on; on a large database this takes a while
        log.info('read which keys the backend holds', { backend: description, keys: this.count, seconds: Math.round(performance.now() - began) / 1000 });
      } else {
        log.warn('could not read which keys the backend holds; writes there read their keys first until it can', { backend: description, retryInMs: WRITTEN_KEYS_RETRY_MS });
        setTimeout(() => void attempt(), WRITTEN_KEYS_RETRY_MS).unref();
      }
    };
    void attempt();
  }

  private insert(fp: number): void {
    let mask = this.table.length - 1;
    for (let i = fp & mask; ; i = (i + 1) & mask) {
      const slot = this.table[i]!;
      if (slot === fp) return;
      if (slot === 0) {
        this.table[i] = fp;
        break;
      }
    }
    if (++this.count * 2 <= this.table.length) return;
    // at half full: double, and place every fingerprint again
    const old = this.table;
    this.table = new Uint32Array(old.length * 2);
    mask = this.table.length - 1;
    for (const f of old) {
      if (f === 0) continue;
      let i = f & mask;
      while (this.table[i] !== 0) i = (i + 1) & mask;
      this.table[i] = f;
    }
  }
}

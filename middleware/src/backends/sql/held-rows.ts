/**
 * What a server write transaction (server-write-txn.ts) keeps in memory: the newest row of
 * every key it has read or written, and the rows inserted but not yet sent to the database. A group commit
 * then costs one read for all its keys and one insert for all its rows instead of a round trip for each.
 */
import type { KeyRow, RangeQuery } from '../backend.js';

const id = (key: Buffer) => key.toString('latin1');

export class HeldRows {
  /** Newest row per key, tombstones included; null: the key has no row. */
  private readonly newest = new Map<string, KeyRow | null>();
  private pending: KeyRow[] = [];

  /** Records what the database holds for `keys`: `rows` are their newest rows (keys without one have none). */
  learn(keys: Buffer[], rows: KeyRow[]): void {
    for (const k of keys) if (!this.newest.has(id(k))) this.newest.set(id(k), null);
    for (const r of rows) {
      const known = this.newest.get(id(r.key));
      if (!known || known.modRevision < r.modRevision) this.newest.set(id(r.key), r);
    }
  }

  /** True when `latest` can answer for `key` without the database. */
  knows(key: Buffer): boolean {
    return this.newest.has(id(key));
  }

  /** Newest row of a known key (see `knows`). */
  latest(key: Buffer): KeyRow | undefined {
    return this.newest.get(id(key)) ?? undefined;
  }

  /** Holds rows to insert; they are now the newest of their keys. */
  add(rows: KeyRow[]): void {
    for (const r of rows) {
      this.pending.push(r);
      this.newest.set(id(r.key), r);
    }
  }

  get held(): number {
    return this.pending.length;
  }

  /** True when a held row lies in the range `q` reads (so the range must see it in the database first). */
  overlaps(q: RangeQuery): boolean {
    for (const r of this.pending) {
      if (q.end === undefined ? r.key.equals(q.start) : Buffer.compare(r.key, q.start) >= 0 && (q.end.length === 0 || Buffer.compare(r.key, q.end) < 0)) return true;
    }
    return false;
  }

  /** The held rows, in insert order, no longer held. */
  take(): KeyRow[] {
    const rows = this.pending;
    this.pending = [];
    return rows;
  }

  /** Forgets what it knew of the database (after raw statements, which may have changed any key). */
  forget(): void {
    this.newest.clear();
  }
}

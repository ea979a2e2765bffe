/**
 * The newest rows of keys recently written or read by the write transactions of a backend reached by RPC
 * (a child middleware, a real etcd; buffered-txn.ts), so a write to a key written a moment ago does not ask
 * the database first: on a routed topology that read is a network round trip inside every write batch.
 *
 * Exact, not approximate: only this middleware changes the database behind such a backend (a child layer
 * takes writes from its parent alone; an etcd of a rule is the middleware's own), and only while holding
 * the backend's write lock. The rows hold while the lock passes from one write transaction to the next;
 * anything else that took the lock in between (a revert, recovery, compaction, a migration step, loading
 * the etcd's revision map) drops them all, as does a commit whose outcome is unknown. Bounded in bytes; the
 * rows least recently written or read go first.
 */
import type { KeyRow } from './backend.js';
import type { Lock } from './sql/lock.js';

/** Newest rows by key (latin1), undefined for a key with none: what a transaction knows without asking. */
export type KnownRows = Map<string, KeyRow | undefined>;

/**
 * Bytes of rows kept per backend. A write batch reads at most a few hundred keys; this keeps the recently
 * written keys of a busy cluster (tens of thousands of small objects) without asking the database again.
 */
export const NEWEST_ROWS_MAX_BYTES = 16 * 1024 * 1024;

/** Bytes counted per entry besides key and value (the Map entry, the row object). */
const ENTRY_OVERHEAD = 160;

function entryBytes(id: string, row: KeyRow | undefined): number {
  return ENTRY_OVERHEAD + id.length + (row ? row.value.length : 0);
}

export class NewestRows {
  /** Map order is recency of write or read. */
  private readonly rows: KnownRows = new Map();
  private bytes = 0;
  /** `lock.taken` when the last write transaction ended: the rows hold if the next one takes the lock next. */
  private endedAt = -1;
  /** Bumped by `clear`: a transaction begun before it must not put back what it knew. */
  private generation = 0;

  constructor(
    private readonly lock: Lock,
    private readonly maxBytes = NEWEST_ROWS_MAX_BYTES,
  ) {}

  /**
   * By a write transaction that has just taken the lock: the rows stay known to it unless anyone else held
   * the lock since the last one ended. Answers the generation to hand back to `ended`.
   */
  begin(): number {
    if (this.lock.taken !== this.endedAt + 1) this.clear();
    return this.generation;
  }

  /** The newest row of a key, as `KnownRows` has it: `has` false when not known. */
  lookup(id: string): { has: boolean; row: KeyRow | undefined } {
    const row = this.rows.get(id);
    if (row !== undefined || this.rows.has(id)) return { has: true, row };
    return { has: false, row: undefined };
  }

  /**
   * By a write transaction ending while it holds the lock: `rows` are the newest rows once it ended (what it
   * committed, what it read of the committed state, and what the commit read ahead); none when its commit
   * failed, which leaves the database's state unknown.
   */
  ended(generation: number, rows: KnownRows | undefined): void {
    if (rows === undefined || generation !== this.generation) {
      this.clear();
      return;
    }
    for (const [id, row] of rows) this.set(id, row);
    this.endedAt = this.lock.taken;
  }

  /** Forgets every row (the database changed behind the write transactions, or may have). */
  clear(): void {
    this.rows.clear();
    this.bytes = 0;
    this.generation++;
    this.endedAt = -1;
  }

  private set(id: string, row: KeyRow | undefined): void {
    if (this.rows.has(id)) {
      this.bytes -= entryBytes(id, this.rows.get(id));
      this.rows.delete(id);
    }
    // copies: the row's buffers may be views of a much larger request or response the cache must not keep alive
    this.rows.set(id, row && { ...row, key: Buffer.from(row.key), value: Buffer.from(row.value) });
    this.bytes += entryBytes(id, row);
    for (const [oldest, r] of this.rows) {
      if (this.bytes <= this.maxBytes) break;
      this.rows.delete(oldest);
      this.bytes -= entryBytes(oldest, r);
    }
  }
}

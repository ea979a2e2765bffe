/**
 * A write transaction kept in memory until commit, for a backend whose database is reached by RPC and
 * takes a whole transaction's rows at commit (a child middleware, a real etcd): rows and meta values are
 * collected, reads see them on top of the committed state, and `commit()` hands everything over at once.
 * Such a backend keeps no leases: they live in the default backend, with the middleware's lessor.
 */
import type { KeyRow, RangeQuery, WriteTxn } from './backend.js';
import type { Lock } from './sql/lock.js';

/** What the transaction reads from and commits to. */
export interface BufferedTxnTarget {
  readonly description: string;
  /**
   * The newest row of `key`, a tombstone included (as `WriteTxn.latest`), undefined when it was never
   * written or was compacted away.
   */
  latest(key: Buffer): Promise<KeyRow | undefined>;
  /** `latest` of several keys in one round trip. */
  latestMany(keys: Buffer[]): Promise<(KeyRow | undefined)[]>;
  range(q: RangeQuery): Promise<KeyRow[]>;
  getMeta(name: string): Promise<Buffer | undefined>;
  /**
   * Commits. With `readAhead` (keys the commit does not write), a target that reads ahead answers their
   * newest rows (undefined: none) in its order, as they are once the commit is done; else nothing.
   */
  commitRows(rows: KeyRow[], meta: Map<string, Buffer>, readAhead?: Buffer[]): Promise<(KeyRow | undefined)[] | void>;
  /** Where a target that reads ahead with its commits keeps the rows for its next transaction. */
  readonly readAhead?: RowsReadAhead;
}

/** Newest rows by key (latin1), undefined for a key with none: what a transaction knows without asking. */
export type KnownRows = Map<string, KeyRow | undefined>;

/**
 * The newest rows of the keys a commit read ahead (`WriteTxn.readAheadAfterCommit`), for the target's next
 * transaction. Only this middleware changes the database behind the target, and only while holding its
 * write lock: the rows hold for the next transaction if it is the next holder of the lock; after a revert,
 * recovery, compaction or migration step in between (each holds the lock), they are dropped.
 */
export class RowsReadAhead {
  private rows: KnownRows | undefined;
  private takenAt = -1;

  constructor(private readonly lock: Lock) {}

  /** By the commit that read them, holding the lock. */
  set(rows: KnownRows): void {
    this.rows = rows;
    this.takenAt = this.lock.taken;
  }

  /** By a transaction that has just taken the lock: the rows, if nobody held the lock since they were read. */
  take(): KnownRows | undefined {
    const rows = this.lock.taken === this.takenAt + 1 ? this.rows : undefined;
    this.rows = undefined;
    return rows;
  }

  clear(): void {
    this.rows = undefined;
  }
}

export class BufferedWriteTxn implements WriteTxn {
  private readonly rows: KeyRow[] = [];
  /** Newest pending row of each key (latin1). */
  private readonly pending = new Map<string, KeyRow>();
  private readonly meta = new Map<string, Buffer>();
  /**
   * Newest committed rows read ahead (`prefetch`), undefined for a key that has none. They stay true for
   * the whole transaction: the backend begins one transaction at a time, and only this middleware writes
   * to the database behind it (a child layer takes writes from its parent alone; an etcd of a rule is the
   * middleware's own).
   */
  private readonly fetched: KnownRows;
  private active = true;
  /** Keys the next transaction will read (`readAheadAfterCommit`). */
  private nextKeys: Buffer[] | undefined;

  /** Begun holding the target's write lock: the rows its last commit read ahead, if still exact, are known. */
  constructor(
    private readonly target: BufferedTxnTarget,
    private readonly release: () => void,
  ) {
    this.fetched = target.readAhead?.take() ?? new Map();
  }

  readAheadAfterCommit(keys: Buffer[]): void {
    this.nextKeys = keys;
  }

  async prefetch(keys: Buffer[]): Promise<void> {
    this.check();
    const wanted = [...new Map(keys.map((k) => [k.toString('latin1'), k])).entries()].filter(([id]) => !this.pending.has(id) && !this.fetched.has(id));
    if (wanted.length === 0) return;
    const rows = await this.target.latestMany(wanted.map(([, k]) => k));
    wanted.forEach(([id], i) => this.fetched.set(id, rows[i]));
  }

  async latest(key: Buffer): Promise<KeyRow | undefined> {
    this.check();
    const id = key.toString('latin1');
    const mine = this.pending.get(id);
    if (mine) return mine;
    if (this.fetched.has(id)) return this.fetched.get(id);
    return this.target.latest(key);
  }

  async range(q: RangeQuery): Promise<KeyRow[]> {
    this.check();
    const mine = [...this.pending.values()].filter((r) => r.modRevision <= q.revision && inRange(r.key, q.start, q.end));
    // a single key at the newest revision (a delete of one key) is known when it was read ahead
    if (mine.length === 0 && q.end === undefined && q.revision === Number.MAX_SAFE_INTEGER && this.fetched.has(q.start.toString('latin1'))) {
      const row = this.fetched.get(q.start.toString('latin1'));
      // the read-ahead keeps tombstones (see `latest`); a range lists live keys only
      return row && !row.deleted ? [q.keysOnly ? { ...row, value: Buffer.alloc(0) } : row] : [];
    }
    if (mine.length === 0) return this.target.range(q);
    const byKey = new Map<string, KeyRow>();
    for (const r of await this.target.range({ ...q, limit: 0 })) byKey.set(r.key.toString('latin1'), r);
    for (const r of mine) {
      if (r.deleted) byKey.delete(r.key.toString('latin1'));
      else byKey.set(r.key.toString('latin1'), q.keysOnly ? { ...r, value: Buffer.alloc(0) } : r);
    }
    const out = [...byKey.values()].sort((a, b) => Buffer.compare(a.key, b.key));
    return q.limit > 0 ? out.slice(0, q.limit) : out;
  }

  insert(rows: KeyRow[]): void {
    this.check();
    for (const r of rows) {
      this.rows.push(r);
      this.pending.set(r.key.toString('latin1'), r);
    }
  }

  setMeta(name: string, value: Buffer): void {
    this.check();
    this.meta.set(name, value);
  }

  async lockMeta(name: string): Promise<Buffer | undefined> {
    this.check();
    return this.meta.get(name) ?? (await this.target.getMeta(name));
  }

  putLease(): void {
    throw new Error(`${this.target.description}: this backend keeps no leases (the middleware's lessor owns them, in its default backend)`);
  }

  deleteLease(): void {
    this.putLease();
  }

  async commit(): Promise<void> {
    this.check();
    try {
      if (this.rows.length > 0 || this.meta.size > 0) await this.commitReadingAhead();
    } finally {
      this.end();
    }
  }

  /**
   * Commits; with `nextKeys`, keeps their newest rows for the next transaction: those it writes are its own
   * newest rows, the others the target reads with the commit (which changes none of them).
   */
  private async commitReadingAhead(): Promise<void> {
    const next = this.target.readAhead ? this.nextKeys : undefined;
    const others = next?.filter((k) => !this.pending.has(k.toString('latin1'))) ?? [];
    const read = await this.target.commitRows(this.rows, this.meta, others.length > 0 ? others : undefined);
    if (!next || (others.length > 0 && read?.length !== others.length)) return;
    const known: KnownRows = new Map(others.map((k, i) => [k.toString('latin1'), read![i]]));
    for (const k of next) {
      const mine = this.pending.get(k.toString('latin1'));
      if (mine) known.set(k.toString('latin1'), mine);
    }
    this.target.readAhead!.set(known);
  }

  async rollback(): Promise<void> {
    if (this.active) this.end();
  }

  private end(): void {
    this.active = false;
    this.release();
  }

  private check(): void {
    if (!this.active) throw new Error('write transaction already ended: begin() a new one');
  }
}

function inRange(key: Buffer, start: Buffer, end: Buffer | undefined): boolean {
  if (end === undefined) return key.equals(start);
  return Buffer.compare(key, start) >= 0 && (end.length === 0 || Buffer.compare(key, end) < 0);
}

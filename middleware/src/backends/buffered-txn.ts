/**
 * A write transaction kept in memory until commit, for a backend whose database is reached by RPC and
 * takes a whole transaction's rows at commit (a child middleware, a real etcd): rows and meta values are
 * collected, reads see them on top of the committed state, and `commit()` hands everything over at once.
 * Such a backend keeps no leases: they live in the default backend, with the middleware's lessor.
 */
import type { KeyRow, RangeQuery, WriteTxn } from './backend.js';
import type { KnownRows, NewestRows } from './newest-rows.js';
import type { WrittenKeys } from './written-keys.js';

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
  /** The newest rows the target's write transactions know without asking (newest-rows.ts). */
  readonly newest: NewestRows;
  /** The keys the database may hold rows of (written-keys.ts): any other key has none, without asking. */
  readonly written: WrittenKeys;
}

export class BufferedWriteTxn implements WriteTxn {
  private readonly rows: KeyRow[] = [];
  /** Newest pending row of each key (latin1). */
  private readonly pending = new Map<string, KeyRow>();
  private readonly meta = new Map<string, Buffer>();
  /**
   * Newest committed rows this transaction read (`prefetch`, `latest`), undefined for a key that has none.
   * They stay true for the whole transaction: the backend begins one transaction at a time, and only this
   * middleware writes to the database behind it (a child layer takes writes from its parent alone; an etcd
   * of a rule is the middleware's own). With the target's `newest` rows, they are what it knows.
   */
  private readonly fetched: KnownRows = new Map();
  private readonly generation: number;
  private active = true;
  /** Keys the next transaction will read (`readAheadAfterCommit`). */
  private nextKeys: Buffer[] | undefined;

  /** Begun holding the target's write lock: the newest rows known to the transactions before, if still exact, are known. */
  constructor(
    private readonly target: BufferedTxnTarget,
    private readonly release: () => void,
  ) {
    this.generation = target.newest.begin();
  }

  /** The newest committed row of a key, if known without asking: `has` false when not. */
  private known(id: string): { has: boolean; row: KeyRow | undefined } {
    if (this.fetched.has(id)) return { has: true, row: this.fetched.get(id) };
    const newest = this.target.newest.lookup(id);
    if (newest.has || this.target.written.mayHold(id)) return newest;
    return { has: true, row: undefined };
  }

  readAheadAfterCommit(keys: Buffer[]): void {
    this.nextKeys = keys;
  }

  async prefetch(keys: Buffer[]): Promise<void> {
    this.check();
    const wanted = [...new Map(keys.map((k) => [k.toString('latin1'), k])).entries()].filter(([id]) => !this.pending.has(id) && !this.known(id).has);
    if (wanted.length === 0) return;
    const rows = await this.target.latestMany(wanted.map(([, k]) => k));
    wanted.forEach(([id], i) => this.fetched.set(id, rows[i]));
  }

  async latest(key: Buffer): Promise<KeyRow | undefined> {
    this.check();
    const id = key.toString('latin1');
    const mine = this.pending.get(id);
    if (mine) return mine;
    const known = this.known(id);
    if (known.has) return known.row;
    const row = await this.target.latest(key);
    this.fetched.set(id, row);
    return row;
  }

  async range(q: RangeQuery): Promise<KeyRow[]> {
    this.check();
    const mine = [...this.pending.values()].filter((r) => r.modRevision <= q.revision && inRange(r.key, q.start, q.end));
    // a single key at the newest revision (a delete of one key) is known when it was read ahead
    const one = mine.length === 0 && q.end === undefined && q.revision === Number.MAX_SAFE_INTEGER ? this.known(q.start.toString('latin1')) : undefined;
    if (one?.has) {
      const row = one.row;
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
    let known: KnownRows | undefined;
    try {
      known = this.rows.length > 0 || this.meta.size > 0 ? await this.commitReadingAhead() : this.fetched;
    } finally {
      // a failed commit leaves the database's state unknown: nothing is known any more
      this.end(known);
    }
  }

  /**
   * Commits; with `nextKeys`, the target reads the newest rows of those not known yet with the commit
   * (which changes none of them). Answers every row known once committed: read, read ahead and written.
   */
  private async commitReadingAhead(): Promise<KnownRows> {
    const others = this.nextKeys?.filter((k) => {
      const id = k.toString('latin1');
      return !this.pending.has(id) && !this.known(id).has;
    });
    // before it is sent: a commit whose outcome stays unknown may have stored them
    for (const r of this.rows) this.target.written.add(r.key);
    const read = await this.target.commitRows(this.rows, this.meta, others?.length ? others : undefined);
    const known: KnownRows = new Map(this.fetched);
    if (others?.length && read?.length === others.length) others.forEach((k, i) => known.set(k.toString('latin1'), read[i]));
    for (const [id, row] of this.pending) known.set(id, row);
    return known;
  }

  async rollback(): Promise<void> {
    // nothing was written: what it read still holds
    if (this.active) this.end(this.fetched);
  }

  private end(known: KnownRows | undefined): void {
    this.active = false;
    this.target.newest.ended(this.generation, known);
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

/**
 * The WriteTxn of one database-server write (server-store.ts): statements on the write connection, refused
 * once it has ended. Every statement is a network round trip, so it sends as few as it can:
 *
 * - BEGIN goes out with the first statement that needs a transaction, not at begin().
 * - `prefetch` (backend.ts, a group commit) reads the newest rows of the batch's keys in one statement, and
 *   `holdWrites` holds the batch's rows until commit, where they go out as one insert. Reads before BEGIN
 *   run outside a transaction: they see the same rows, as nothing else writes while the write lock is held
 *   (other processes are fenced by the leader lock, which takes BEGIN first).
 * - A batch whose only write is that one insert sends no BEGIN and COMMIT at all: a single statement outside
 *   a transaction commits at once, all or nothing, and durably (PostgreSQL synchronous_commit, InnoDB
 *   flush_log_at_trx_commit, as for COMMIT).
 *
 * A group commit of 32 puts went from 66 round trips (BEGIN, a read and an insert per put, COMMIT) to two.
 */
import { BackendUnavailableError, DeferredWriteError, type KeyRow, type LeaseRow, type RangeQuery } from '../backend.js';
import { HeldRows } from './held-rows.js';
import type { SqlWriteTxn } from './movable-sql.js';
import type { DbRow } from './rows.js';
import { TxnLifecycle } from './txn-lifecycle.js';
import type { SqlRunner, WriteConnection } from './write-connection.js';

/** What the write transaction asks of its store (server-store.ts's ServerLogStore): statements on a connection, and its connection handling. */
export interface WriteTxnStore {
  readonly description: string;
  startWriteTimer(): () => void;
  latestManyOn(c: SqlRunner, keys: Buffer[]): Promise<KeyRow[]>;
  latestOn(c: SqlRunner, key: Buffer): Promise<KeyRow | undefined>;
  rangeOn(c: SqlRunner, q: RangeQuery): Promise<KeyRow[]>;
  checkKeys(rows: KeyRow[]): void;
  insertOn(c: SqlRunner, rows: KeyRow[]): Promise<void>;
  insertIsOneStatement(rows: KeyRow[]): boolean;
  setMetaOn(c: SqlRunner, name: string, value: Buffer): Promise<void>;
  lockMetaOn(c: SqlRunner, name: string): Promise<Buffer | undefined>;
  putLeaseOn(c: SqlRunner, lease: LeaseRow): Promise<void>;
  deleteLeaseOn(c: SqlRunner, id: string): Promise<void>;
  /** Whether `err` broke the connection (it is then replaced). */
  connectionLost(err: unknown): boolean;
  replaceWriter(err: unknown): Promise<WriteConnection>;
  beginOn(c: WriteConnection): Promise<WriteConnection>;
  abandon(conn: WriteConnection, err: unknown): Promise<void>;
  wrap(err: unknown, what: string): unknown;
}

export class ServerWriteTxn implements SqlWriteTxn {
  private readonly life: TxnLifecycle;
  /** BEGIN was sent (on `c`, which may have been replaced by a fresh connection then). */
  private begun = false;
  /** A statement failed: the transaction can only roll back (and the connection may be broken). */
  private failure: unknown;
  /** Newest rows known (read ahead, read, or written by this transaction) and, with `holdWrites`, rows held. */
  private readonly known = new HeldRows();
  /** Set by `holdWrites`. */
  private holding = false;

  constructor(
    private readonly store: WriteTxnStore,
    private c: WriteConnection,
    release: () => void,
  ) {
    this.life = new TxnLifecycle(release, store.startWriteTimer());
  }

  holdWrites(): void {
    this.life.check();
    this.holding = true;
  }

  /** Reads the newest rows of `keys` in one statement (the write queue ignores a failure: see WriteTxn.prefetch). */
  async prefetch(keys: Buffer[]): Promise<void> {
    this.life.check();
    const wanted = [...new Map(keys.map((k) => [k.toString('latin1'), k])).values()].filter((k) => !this.known.knows(k));
    if (wanted.length === 0) return;
    this.known.learn(wanted, await this.read((c) => this.store.latestManyOn(c, wanted)));
  }

  async latest(key: Buffer): Promise<KeyRow | undefined> {
    this.life.check();
    if (this.known.knows(key)) return this.known.latest(key);
    // a key with a held row is known, so the database holds everything of this one
    const row = await this.read((c) => this.store.latestOn(c, key));
    this.known.learn([key], row ? [row] : []);
    return row;
  }

  async range(q: RangeQuery): Promise<KeyRow[]> {
    this.life.check();
    if (this.known.overlaps(q)) await this.flush();
    return this.read((c) => this.store.rangeOn(c, q));
  }

  async insert(rows: KeyRow[]): Promise<void> {
    this.life.check();
    if (this.holding) {
      this.store.checkKeys(rows); // a key too long fails its own request, not the batch at commit
      this.known.add(rows);
      return;
    }
    await this.run(async () => this.store.insertOn(await this.inTxn(), rows));
    this.known.learn([], rows);
  }

  setMeta(name: string, value: Buffer): Promise<void> {
    return this.run(async () => this.store.setMetaOn(await this.inTxn(), name, value));
  }

  lockMeta(name: string): Promise<Buffer | undefined> {
    return this.run(async () => this.store.lockMetaOn(await this.inTxn(), name));
  }

  putLease(lease: LeaseRow): Promise<void> {
    return this.run(async () => this.store.putLeaseOn(await this.inTxn(), lease));
  }

  deleteLease(id: string): Promise<void> {
    return this.run(async () => this.store.deleteLeaseOn(await this.inTxn(), id));
  }

  async query(sql: string, params: unknown[]): Promise<DbRow[]> {
    await this.beforeRaw();
    return this.run(async () => (await this.inTxn()).query(sql, params));
  }

  async execute(sql: string, params: unknown[]): Promise<number> {
    await this.beforeRaw();
    return this.run(async () => (await this.inTxn()).execute(sql, params));
  }

  /**
   * Commits. Throws `DeferredWriteError` when held rows could not be written and certainly nothing
   * committed; any other error leaves the outcome unknown, as a failed COMMIT does.
   */
  async commit(): Promise<void> {
    this.life.check();
    try {
      if (this.failure !== undefined) throw new Error('a statement of this write transaction failed; it can only be rolled back');
      const rows = this.known.take();
      if (!this.begun && (rows.length === 0 || this.oneStatement(rows))) {
        if (rows.length > 0) await this.commitAlone(rows);
        return; // nothing was written, or the insert committed itself
      }
      if (rows.length > 0) await this.writeHeld(rows);
      await this.c.commit();
    } catch (err) {
      await this.store.abandon(this.c, err);
      if (err instanceof DeferredWriteError) throw err;
      throw this.store.wrap(err, 'commit failed (the write may or may not have committed)');
    } finally {
      this.life.end();
    }
  }

  async rollback(): Promise<void> {
    if (this.life.ended) return;
    try {
      if (this.begun || this.failure !== undefined) await this.store.abandon(this.c, this.failure);
    } finally {
      this.life.end();
    }
  }

  /** Whether `rows` go out as one statement (a row the driver refuses is left to fail when it is written). */
  private oneStatement(rows: KeyRow[]): boolean {
    try {
      return this.store.insertIsOneStatement(rows);
    } catch {
      return false;
    }
  }

  /** The held rows' insert, outside a transaction: it is the commit. */
  private async commitAlone(rows: KeyRow[]): Promise<void> {
    try {
      await this.store.insertOn(this.c, rows);
    } catch (err) {
      const wrapped = this.store.wrap(err, `inserting the ${rows.length} rows of a write batch`);
      // the server answered with an error (a unique key taken, say): the statement did not commit
      if (!(wrapped instanceof BackendUnavailableError) && this.c.usable) {
        throw new DeferredWriteError(`${this.store.description}: writing the ${rows.length} rows of a write batch failed: ${(err as Error).message}`, { cause: wrapped });
      }
      this.failure ??= err;
      throw wrapped;
    }
  }

  /** Writes the held rows now, inside the transaction. */
  private async flush(): Promise<void> {
    const rows = this.known.take();
    if (rows.length > 0) await this.writeHeld(rows);
  }

  private async writeHeld(rows: KeyRow[]): Promise<void> {
    try {
      await this.run(async () => this.store.insertOn(await this.inTxn(), rows));
    } catch (err) {
      throw new DeferredWriteError(`${this.store.description}: writing the ${rows.length} rows of a write batch failed: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * A read: in the transaction once it has begun, else outside one (see the file comment), where a broken
   * connection is replaced and the read tried once more, as nothing was written on it yet.
   */
  private async read<T>(fn: (c: WriteConnection) => Promise<T>): Promise<T> {
    if (this.begun) return this.run(() => fn(this.c));
    try {
      return await fn(this.c);
    } catch (err) {
      if (!this.store.connectionLost(err)) throw this.store.wrap(err, 'write transaction read failed'); // no transaction to spoil
      this.c = await this.store.replaceWriter(err);
      return this.run(() => fn(this.c));
    }
  }

  /** The connection, in the transaction (BEGIN is sent first if it was not yet). */
  private async inTxn(): Promise<WriteConnection> {
    this.life.check();
    if (!this.begun) {
      this.c = await this.store.beginOn(this.c);
      this.begun = true;
    }
    return this.c;
  }

  /** Raw statements see every row and may change any key: held rows go first, and nothing known stays. */
  private async beforeRaw(): Promise<void> {
    this.life.check();
    await this.flush();
    this.known.forget();
  }

  /** Classifies failures right away, so the caller already sees BackendUnavailableError. */
  private async run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      this.failure ??= err;
      throw this.store.wrap(err, 'write transaction statement failed');
    }
  }
}

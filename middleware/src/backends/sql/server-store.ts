/**
 * The log store on a database server (PostgreSQL, MySQL): the Backend logic both share, over a small
 * driver interface that holds what differs (connecting, placeholders, bulk statements, error codes).
 *
 * Reads go through the driver's pool and see only committed rows (each is one autocommit statement). The
 * write transaction runs on one dedicated connection, kept between writes and replaced when the driver
 * reports it broken or too old. Compaction batches are single DELETE statements on the pool.
 */
import { logger } from '../../log.js';
import { BackendUnavailableError, inWriteTxn, type ChangeRow, type CompactResult, type KeyRow, type LeaseRow, type RangeQuery, type WriteTxn } from '../backend.js';
import { CompactionProgress, planBatch, scanParams, type Deletion } from './compaction.js';
import type { SqlDialect } from './dialect.js';
import { classify, messageOf, openFailure } from './errors.js';
import { Lock } from './lock.js';
import { startTimer, timed, type Operation } from './metrics.js';
import { checkInt64, checkKeyLength, toChangeRow, toKeyRow, toLeaseRow, toScanRow, type DbRow } from './rows.js';
import type { MovableBackend } from '../movable.js';
import { SqlMoves } from './movable-sql.js';
import { migrate } from './schema.js';
import { GetBatcher } from './get-batcher.js';
import { ServerWriteTxn } from './server-write-txn.js';
import type { ConnectionControl, ConnectionEvents, SqlRunner, WriteConnection } from './write-connection.js';
import { Statements, rangeShape } from './statements.js';

/**
 * Get queries a backend runs at once; more gets wait and go out together (get-batcher.ts). Two keep the
 * database busy while the next batch gathers, with few enough statements to save their round trips.
 */
const GET_QUERIES_IN_FLIGHT = 2;

/**
 * The write transaction's connection: statements through the driver's runner on it, transaction control,
 * and whether it may still be used: the driver has not seen it break (server restart, KILL, network) and
 * it has not outlived the pool's maxLifeTime.
 */
export class DedicatedWriteConnection implements WriteConnection {
  private broken = false;
  private readonly born = Date.now();

  constructor(
    connection: ConnectionEvents,
    private readonly runner: SqlRunner,
    private readonly control: ConnectionControl,
    private readonly maxLifeMs: number,
    description: string,
  ) {
    // Without an error listener a failure on the idle connection would crash the process.
    connection.on('error', (err) => {
      this.broken = true;
      logger.warn('write connection broke', { component: 'sql', backend: description, error: messageOf(err) });
    });
    connection.on('end', () => (this.broken = true));
  }

  get usable(): boolean {
    return !this.broken && (this.maxLifeMs === 0 || Date.now() - this.born < this.maxLifeMs);
  }

  query(sql: string, params: unknown[]): Promise<DbRow[]> {
    return this.runner.query(sql, params);
  }

  execute(sql: string, params: unknown[]): Promise<number> {
    return this.runner.execute(sql, params);
  }

  async begin(): Promise<void> {
    await this.control.run(this.control.begin);
  }

  async commit(): Promise<void> {
    await this.control.run('COMMIT');
  }

  async rollback(): Promise<void> {
    await this.control.run('ROLLBACK');
  }

  destroy(): void {
    this.broken = true;
    this.control.close();
  }
}

export interface ServerDriver {
  readonly dialect: SqlDialect;
  readonly description: string;
  /** What to check when the server cannot be reached (ends unavailable errors). */
  readonly hint: string;
  readonly pool: SqlRunner;
  /** Connects, creating the database if missing, and starts the pool. */
  connect(): Promise<void>;
  /** Runs `fn` on one connection holding the dialect's schema lock (and transaction, where DDL allows). */
  withSchemaLock<T>(fn: (c: SqlRunner) => Promise<T>): Promise<T>;
  openWriteConnection(): Promise<WriteConnection>;
  insertRows(c: SqlRunner, rows: KeyRow[]): Promise<void>;
  /** True when `insertRows` sends `rows` as one statement (see ServerLogStore.insertIsOneStatement). */
  insertIsOneStatement(rows: KeyRow[]): boolean;
  /**
   * Several gets in one statement: the newest row (tombstones included) of each key at its revision, each
   * row with the position of its get in `i` (0-based); gets without a row have none.
   */
  getRows(c: SqlRunner, gets: { key: Buffer; revision: number }[]): Promise<DbRow[]>;
  /** The newest row (tombstones included) of each of `keys` that has one, in as few statements as the driver can. */
  latestRows(c: SqlRunner, keys: Buffer[]): Promise<DbRow[]>;
  /** Deletes rows by (name, rev) in one statement; returns how many existed. */
  deleteRows(c: SqlRunner, rows: Deletion[]): Promise<number>;
  /** The driver's exact binding of a decimal int64. */
  int64(decimal: string): unknown;
  sizeBytes(): Promise<number>;
  /** True for failures that may pass (network, server restarting, resources). */
  transient(err: unknown): boolean;
  /** True when the connection used broke, so the same read on another connection may well succeed. */
  connectionLost(err: unknown): boolean;
  close(): Promise<void>;
}

export class ServerLogStore implements MovableBackend {
  readonly description: string;
  /** Every statement is a round trip: a write batch reads its keys ahead (ServerWriteTxn.prefetch). */
  readonly readsAhead = true;
  private readonly d: SqlDialect;
  private readonly st: Statements;
  private readonly log;
  private readonly writeLock = new Lock();
  private readonly compactLock = new Lock();
  private readonly progress = new CompactionProgress();
  private writer?: WriteConnection;
  private readonly gets = new GetBatcher<KeyRow | undefined>(GET_QUERIES_IN_FLIGHT, (gets) => this.read('get', (c) => this.getsOn(c, gets)));
  private opened = false;
  readonly moves: SqlMoves;

  constructor(private readonly driver: ServerDriver) {
    this.description = driver.description;
    this.d = driver.dialect;
    this.st = new Statements(driver.dialect);
    this.moves = new SqlMoves(this.st, {
      read: (sql, params) => this.read('migrate', (c) => c.query(sql, params)),
      begin: async () => (await this.begin()) as ServerWriteTxn,
      compaction: this.progress,
    });
    this.log = logger.child({ component: 'sql', dialect: this.d.name, backend: this.description });
  }

  async open(): Promise<void> {
    if (this.opened) return; // already open (the store opens the backend it is given; a test may have too)
    try {
      await this.driver.connect();
      const found = await this.driver.withSchemaLock((c) =>
        migrate(
          {
            run: (sql, params = []) => c.execute(sql, params),
            meta: async (name) => (await c.query(this.st.metaGet, [name]))[0]?.value as Buffer | undefined,
            setMeta: async (name, value) => void (await c.execute(this.st.metaSet, [name, value])),
          },
          this.d,
          this.description,
        ),
      );
      if (found === 0) this.log.info('created schema');
      this.opened = true;
    } catch (err) {
      await this.driver.close().catch(() => undefined);
      throw openFailure(err, (e) => this.driver.transient(e), this.description, 'cannot open the database', this.driver.hint);
    }
  }

  /** Stops a running compaction after its batch, waits for a running write, then closes every connection. */
  async close(): Promise<void> {
    this.opened = false;
    await this.compactLock.run(() =>
      this.writeLock.run(async () => {
        this.writer?.destroy();
        this.writer = undefined;
      }),
    );
    await this.driver.close();
  }

  maxRevision(): Promise<number> {
    return this.read('max_revision', async (c) => Number((await c.query(this.st.maxRevision, []))[0]?.rev ?? 0));
  }

  range(q: RangeQuery): Promise<KeyRow[]> {
    if (q.end === undefined && q.keysOnly !== true) return this.gets.get(q.start, q.revision).then((row) => (row ? [row] : []));
    return this.read(q.end === undefined ? 'get' : 'range', (c) => this.rangeOn(c, q));
  }

  /** Gets in one statement (see GetBatcher): each one's live row or undefined, in their order. */
  private async getsOn(c: SqlRunner, gets: { key: Buffer; revision: number }[]): Promise<(KeyRow | undefined)[]> {
    if (gets.length === 1) return [(await this.rangeOn(c, { start: gets[0]!.key, revision: gets[0]!.revision, limit: 0 }))[0]];
    const out = new Array<KeyRow | undefined>(gets.length);
    for (const r of await this.driver.getRows(c, gets)) if (Number(r.deleted) === 0) out[Number(r.i)] = toKeyRow(r);
    return out;
  }

  count(start: Buffer, end: Buffer | undefined, revision: number): Promise<number> {
    return this.read('count', async (c) => {
      if (end === undefined) return (await this.rangeOn(c, { start, revision, limit: 1, keysOnly: true })).length;
      return Number((await c.query(this.st.count(end.length > 0), this.st.countParams(start, end, revision)))[0]!.n);
    });
  }

  changes(from: number, to: number, limit: number): Promise<ChangeRow[]> {
    return this.read('changes', async (c) => {
      const rows = await c.query(this.st.changes(limit > 0), limit > 0 ? [from, to, limit] : [from, to]);
      return rows.map(toChangeRow);
    });
  }

  /** Takes the write lock and the write connection; the transaction sends BEGIN when it first needs it. */
  async begin(): Promise<WriteTxn> {
    const release = await this.writeLock.acquire();
    try {
      this.checkOpen();
      return new ServerWriteTxn(this, await this.writeConnection(), release);
    } catch (err) {
      release();
      throw this.wrap(err, 'cannot start a write transaction');
    }
  }

  async revert(from: number, to: number): Promise<void> {
    await inWriteTxn({ begin: async () => (await this.begin()) as ServerWriteTxn }, async (tx) => void (await tx.execute(this.st.revertRows, [from, to])));
  }

  async recover(): Promise<void> {}

  compact(revision: number, batchSize: number, deadline: number): Promise<CompactResult> {
    return this.compactLock.run(async () => {
      this.checkOpen();
      if (!this.progress.begin(revision)) return { deleted: 0, done: true };
      let deleted = 0;
      do {
        deleted += await timed(this.d.name, 'compact_batch', () => this.compactBatch(revision, batchSize));
        if (this.progress.isComplete(revision)) return { deleted, done: true };
      } while (Date.now() < deadline && this.opened);
      return { deleted, done: false };
    });
  }

  getMeta(name: string): Promise<Buffer | undefined> {
    return this.read('meta', async (c) => (await c.query(this.st.metaGet, [name]))[0]?.value as Buffer | undefined);
  }

  leases(): Promise<LeaseRow[]> {
    return this.read('leases', async (c) => (await c.query(this.st.leaseList, [])).map(toLeaseRow));
  }

  leasedKeys(): Promise<{ key: Buffer; lease: string }[]> {
    return this.read('leases', async (c) => (await c.query(this.st.leasedKeys, [])).map((r) => ({ key: r.name as Buffer, lease: String(r.lease) })));
  }

  async sizeBytes(): Promise<number> {
    this.checkOpen();
    try {
      return await this.driver.sizeBytes();
    } catch (err) {
      throw this.wrap(err, 'cannot read the database size');
    }
  }

  async rangeOn(c: SqlRunner, q: RangeQuery): Promise<KeyRow[]> {
    if (q.end === undefined) {
      const row = (await c.query(this.st.get(q.keysOnly === true), [q.start, q.revision]))[0];
      return row && Number(row.deleted) === 0 ? [toKeyRow(row)] : [];
    }
    const shape = rangeShape(q);
    return (await c.query(this.st.range(shape), this.st.rangeParams(q, shape))).map((r) => toKeyRow(r));
  }

  async latestOn(c: SqlRunner, key: Buffer): Promise<KeyRow | undefined> {
    const row = (await c.query(this.st.latest, [key]))[0];
    return row && toKeyRow(row);
  }

  async setMetaOn(c: SqlRunner, name: string, value: Buffer): Promise<void> {
    await c.execute(this.st.metaSet, [name, value]);
  }

  async lockMetaOn(c: SqlRunner, name: string): Promise<Buffer | undefined> {
    return (await c.query(this.st.metaLock, [name]))[0]?.value as Buffer | undefined;
  }

  async putLeaseOn(c: SqlRunner, lease: LeaseRow): Promise<void> {
    await c.execute(this.st.leasePut, [this.driver.int64(checkInt64(lease.id, 'lease ID')), lease.ttl, lease.expiresAt]);
  }

  async deleteLeaseOn(c: SqlRunner, id: string): Promise<void> {
    await c.execute(this.st.leaseDelete, [this.driver.int64(checkInt64(id, 'lease ID'))]);
  }

  async latestManyOn(c: SqlRunner, keys: Buffer[]): Promise<KeyRow[]> {
    return (await this.driver.latestRows(c, keys)).map((r) => toKeyRow(r));
  }

  insertOn(c: SqlRunner, rows: KeyRow[]): Promise<void> {
    return this.driver.insertRows(c, rows);
  }

  /** The key-length check of `insertOn`, for rows held to be inserted later. */
  checkKeys(rows: KeyRow[]): void {
    for (const row of rows) checkKeyLength(row.key, this.d.maxKeyBytes, this.d.label);
  }

  /** True when `insertOn` writes `rows` in one statement, which outside a transaction commits them at once, all or none. */
  insertIsOneStatement(rows: KeyRow[]): boolean {
    return this.driver.insertIsOneStatement(rows);
  }

  /**
   * A pool read, retried once on another connection when the one it used had broken (a server restart
   * leaves dead idle connections in the pool): idempotent, and saves the caller an Unavailable round.
   */
  private read<T>(op: Operation, fn: (c: SqlRunner) => Promise<T>): Promise<T> {
    return timed(this.d.name, op, async () => {
      this.checkOpen();
      try {
        return await fn(this.driver.pool);
      } catch (err) {
        if (!this.driver.connectionLost(err)) throw this.wrap(err, `${op} failed`);
        this.log.warn('connection lost; retrying the read on another connection', { op, error: err });
        try {
          return await fn(this.driver.pool);
        } catch (again) {
          throw this.wrap(again, `${op} failed`);
        }
      }
    });
  }

  /** True when `err` says the connection used broke (see ServerDriver.connectionLost). */
  connectionLost(err: unknown): boolean {
    return this.driver.connectionLost(err);
  }

  /** Replaces the write connection after `err` broke it, before anything was written on it. */
  async replaceWriter(err: unknown): Promise<WriteConnection> {
    this.log.warn('write connection lost; reconnecting', { error: err });
    this.dropWriter();
    try {
      return await this.writeConnection();
    } catch (again) {
      throw this.wrap(again, 'cannot start a write transaction');
    }
  }

  /** The write connection, replacing a broken or old one first. */
  private async writeConnection(): Promise<WriteConnection> {
    if (this.writer && !this.writer.usable) this.dropWriter();
    this.writer ??= await this.driver.openWriteConnection();
    return this.writer;
  }

  /**
   * Sends BEGIN on the write connection `c` (the caller's, while it holds the write lock), or on a fresh one
   * when `c` turns out broken: nothing was written on it yet, so one more try is safe. Returns the
   * connection the transaction now runs on.
   */
  async beginOn(c: WriteConnection): Promise<WriteConnection> {
    for (let attempt = 0; ; attempt++) {
      try {
        const conn = attempt === 0 && c.usable ? c : await this.writeConnection();
        await conn.begin();
        return conn;
      } catch (err) {
        this.dropWriter();
        // Nothing was written yet, so one more try on a fresh connection is safe.
        if (attempt > 0 || !this.driver.connectionLost(err)) throw this.wrap(err, 'cannot start a write transaction');
        this.log.warn('write connection lost; reconnecting', { error: err });
      }
    }
  }

  /** Ends a transaction that will not commit: rolls back, or drops the connection when it broke (`err` transient). */
  async abandon(conn: WriteConnection, err: unknown): Promise<void> {
    if (err instanceof BackendUnavailableError || this.driver.transient(err)) {
      this.dropWriter();
      return;
    }
    try {
      await conn.rollback();
    } catch (rollbackErr) {
      this.log.warn('rollback failed; replacing the write connection', { error: rollbackErr });
      this.dropWriter();
    }
  }

  startWriteTimer(): () => void {
    return startTimer(this.d.name, 'write');
  }

  private dropWriter(): void {
    this.writer?.destroy();
    this.writer = undefined;
  }

  private async compactBatch(revision: number, batchSize: number): Promise<number> {
    try {
      const cursor = this.progress.position;
      const rows = (await this.driver.pool.query(this.st.compactScan, scanParams(cursor, revision, batchSize))).map(toScanRow);
      const plan = planBatch(rows, revision, batchSize, cursor);
      const deleted = plan.deletions.length > 0 ? await this.driver.deleteRows(this.driver.pool, plan.deletions) : 0;
      this.progress.advance(plan);
      return deleted;
    } catch (err) {
      throw this.wrap(err, 'compaction batch failed (it resumes on the next call)');
    }
  }

  private checkOpen(): void {
    if (!this.opened) throw new Error(`${this.description}: the backend is not open (call open() first, and not after close())`);
  }

  wrap(err: unknown, what: string): unknown {
    return classify(err, (e) => this.driver.transient(e), `${this.description}: ${what}`, this.driver.hint);
  }
}

/**
 * The SQLite backend (better-sqlite3). Connections to one WAL database: the writer runs the single write
 * transaction and compaction batches (serialised by a lock), the reader serves single-key reads and small
 * pages, and a read worker thread serves larger ranges and counts (sqlite-read-thread.ts), so reads never
 * see a write transaction that is still open. better-sqlite3 is synchronous: every statement is a
 * cheap in-process call, which is why the WriteTxn methods return plain values instead of promises.
 */
import type Database from 'better-sqlite3';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { logger } from '../../log.js';
import type { SqliteEndpoint } from '../../topology/endpoint.js';
import { BackendUnavailableError, inWriteTxn, type ChangeRow, type CompactResult, type KeyRow, type LeaseRow, type RangeQuery, type WriteTxn } from '../backend.js';
import { CompactionProgress, planBatch, scanParams } from './compaction.js';
import { classify, errorCode, openFailure } from './errors.js';
import { Lock } from './lock.js';
import { startTimer, timed } from './metrics.js';
import { checkInt64, checkKeyLength, rowParams, toChangeRow, toKeyRow, toLeaseRow, toScanRow, type DbRow } from './rows.js';
import type { MovableBackend } from '../movable.js';
import { SqlMoves, type SqlWriteTxn } from './movable-sql.js';
import { migrate } from './schema.js';
import { WalCheckpointer } from './sqlite-checkpoint.js';
import { connectSqlite, StatementCache } from './sqlite-connection.js';
import { sqliteDialect, transientSqliteError as transient } from './sqlite-dialect.js';
import { PackedRanges, unpackChunks } from './sqlite-pages.js';
import { SqliteReadThread } from './sqlite-read-thread.js';
import { Statements } from './statements.js';
import { TxnLifecycle } from './txn-lifecycle.js';

const log = logger.child({ component: 'sql', dialect: 'sqlite' });

const toBigInt = (decimal: string) => BigInt(decimal);

/**
 * Ranges limited to at most this many keys (kube-apiserver pages 500) read on the main thread: well under a
 * millisecond, less than the hop to the read worker costs in CPU. Unlimited or larger ranges, counts
 * (which scan the whole range whatever the limit) and changes (watch catch-up) go to the worker.
 */
const MAIN_THREAD_MAX_ROWS = 1000;

export class SqliteBackend implements MovableBackend {
  readonly description: string;
  private readonly st = new Statements(sqliteDialect);
  private readonly pages = new PackedRanges(this.st);
  private readonly writeLock = new Lock();
  private readonly compactLock = new Lock();
  private readonly progress = new CompactionProgress();
  private writer?: StatementCache;
  private reader?: StatementCache;
  /** Multi-key ranges and counts, off the event loop (sqlite-read-thread.ts). */
  private readThread?: SqliteReadThread;
  private file = '';
  /** Holds the database of `sqlite://:memory:` (a private temporary file: two connections must share it). */
  private tempDir?: string;
  private closing = false;
  /** Checkpoints the WAL when SQLite's own checkpoints cannot reset it (sqlite-checkpoint.ts). */
  private checkpoints?: WalCheckpointer;
  /** Write transactions with raw statements (reverts, migration copies). */
  private readonly sqlTxns = { begin: async () => (await this.begin()) as SqliteWriteTxn };
  readonly moves = new SqlMoves(this.st, {
    read: (sql, params) => this.read('migrate', (r) => r.get(sql).all(...params) as DbRow[]),
    begin: this.sqlTxns.begin,
    compaction: this.progress,
  });

  constructor(
    private readonly endpoint: SqliteEndpoint,
    description: string,
  ) {
    this.description = description;
  }

  async open(): Promise<void> {
    if (this.writer) return; // already open (the store opens the backend it is given; a test may have too)
    this.closing = false;
    const ignored = Object.keys(this.endpoint.params);
    if (ignored.length > 0) log.debug('endpoint parameters ignored: HariKube always uses WAL, synchronous=FULL', { backend: this.description, ignored });
    try {
      if (this.endpoint.path === ':memory:') {
        this.tempDir = mkdtempSync(path.join(os.tmpdir(), 'harikube-memory-'));
        this.file = path.join(this.tempDir, 'state.db');
      } else {
        this.file = path.resolve(this.endpoint.path);
        mkdirSync(path.dirname(this.file), { recursive: true });
      }
      const writer = this.connect(false);
      this.writer = new StatementCache(writer);
      await this.migrateSchema(writer);
      this.reader = new StatementCache(this.connect(true));
      this.readThread = new SqliteReadThread({ file: this.file, description: this.description });
      await this.readThread.start();
      this.checkpoints = new WalCheckpointer({ file: this.file, description: this.description, whenQuiet: (fn) => this.whenQuiet(fn), log });
      log.debug('opened', { backend: this.description, file: this.file });
    } catch (err) {
      await this.close();
      throw openFailure(err, transient, this.description, `cannot open SQLite database ${this.file}`, 'check that the directory exists, is writable and the disk is not full');
    }
  }

  /** Stops a running compaction after its batch, waits for a running write, then closes both connections. */
  async close(): Promise<void> {
    this.closing = true;
    await this.readThread?.close();
    this.readThread = undefined;
    // one waiting for reads has been released by close() and finds the backend closing
    await this.checkpoints?.settled();
    return this.compactLock.run(() =>
      this.writeLock.run(() => {
        for (const c of [this.reader, this.writer]) if (c?.db.open) c.db.close();
        this.reader = this.writer = undefined;
        if (this.tempDir) rmSync(this.tempDir, { recursive: true, force: true });
        this.tempDir = undefined;
      }),
    );
  }

  async maxRevision(): Promise<number> {
    return this.read('max_revision', (r) => Number((r.get(this.st.maxRevision).get() as DbRow).rev ?? 0));
  }

  async range(q: RangeQuery): Promise<KeyRow[]> {
    if (q.end === undefined) return this.read('get', (r) => this.rangeOn(r, q));
    if (q.limit > 0 && q.limit <= MAIN_THREAD_MAX_ROWS) return this.read('range', (r) => this.rangeOn(r, q));
    return timed('sqlite', 'range', () => this.onThread(async (t) => unpackChunks(await t.range(q))));
  }

  async count(start: Buffer, end: Buffer | undefined, revision: number): Promise<number> {
    if (end === undefined) return this.read('count', (r) => this.rangeOn(r, { start, revision, limit: 1, keysOnly: true }).length);
    return timed('sqlite', 'count', () => this.onThread((t) => t.count(start, end, revision)));
  }

  /** On the read worker: watch catch-up reads up to 1,000 rows with their predecessors at a time. */
  async changes(from: number, to: number, limit: number): Promise<ChangeRow[]> {
    return timed('sqlite', 'changes', () => this.onThread(async (t) => (await t.changes(from, to, limit)).map(toChangeRow)));
  }

  async begin(): Promise<WriteTxn> {
    const release = await this.writeLock.acquire();
    try {
      const w = this.open_(this.writer);
      this.exec(() => w.get('BEGIN IMMEDIATE').run());
      return new SqliteWriteTxn(this, w, release);
    } catch (err) {
      release();
      throw err;
    }
  }

  async revert(from: number, to: number): Promise<void> {
    await inWriteTxn(this.sqlTxns, async (tx) => void tx.execute(this.st.revertRows, [from, to]));
  }

  async recover(): Promise<void> {}

  compact(revision: number, batchSize: number, deadline: number): Promise<CompactResult> {
    return this.compactLock.run(async () => {
      if (!this.progress.begin(revision)) return { deleted: 0, done: true };
      let deleted = 0;
      do {
        deleted += await this.writeLock.run(() => timed('sqlite', 'compact_batch', () => this.compactBatch(revision, batchSize)));
        if (this.progress.isComplete(revision)) return { deleted, done: true };
      } while (Date.now() < deadline && !this.closing);
      return { deleted, done: false };
    });
  }

  async getMeta(name: string): Promise<Buffer | undefined> {
    return this.read('meta', (r) => (r.get(this.st.metaGet).get(name) as DbRow | undefined)?.value as Buffer | undefined);
  }

  async leases(): Promise<LeaseRow[]> {
    return this.read('leases', (r) => (r.get(this.st.leaseList).all() as DbRow[]).map(toLeaseRow));
  }

  async leasedKeys(): Promise<{ key: Buffer; lease: string }[]> {
    return this.read('leases', (r) => (r.get(this.st.leasedKeys).all() as DbRow[]).map((row) => ({ key: row.name as Buffer, lease: String(row.lease) })));
  }

  async sizeBytes(): Promise<number> {
    const r = this.open_(this.reader);
    const pages = Number(r.db.pragma('page_count', { simple: true }));
    const pageSize = Number(r.db.pragma('page_size', { simple: true }));
    let wal = 0;
    try {
      wal = statSync(`${this.file}-wal`).size;
    } catch {
      // No WAL file at the moment (checkpointed and truncated, or not created yet).
    }
    return pages * pageSize + wal;
  }

  /** The snapshot range on connection `c` (the reader, or the writer inside a write transaction). */
  rangeOn(c: StatementCache, q: RangeQuery): KeyRow[] {
    if (q.end === undefined) {
      const row = c.get(this.st.get(q.keysOnly === true)).get(q.start, q.revision) as DbRow | undefined;
      return row && Number(row.deleted) === 0 ? [toKeyRow(row)] : [];
    }
    return unpackChunks(this.pages.read(c, q));
  }

  latestOn(c: StatementCache, key: Buffer): KeyRow | undefined {
    const row = c.get(this.st.latest).get(key) as DbRow | undefined;
    return row && toKeyRow(row);
  }

  insertOn(c: StatementCache, rows: KeyRow[]): void {
    const insert = c.get(this.st.insertRow);
    for (const row of rows) {
      checkKeyLength(row.key, sqliteDialect.maxKeyBytes, sqliteDialect.label);
      this.exec(() => insert.run(...rowParams(row, toBigInt)));
    }
  }

  setMetaOn(c: StatementCache, name: string, value: Buffer): void {
    this.exec(() => c.get(this.st.metaSet).run(name, value));
  }

  lockMetaOn(c: StatementCache, name: string): Buffer | undefined {
    return this.exec(() => (c.get(this.st.metaLock).get(name) as DbRow | undefined)?.value as Buffer | undefined);
  }

  putLeaseOn(c: StatementCache, lease: LeaseRow): void {
    this.exec(() => c.get(this.st.leasePut).run(BigInt(checkInt64(lease.id, 'lease ID')), lease.ttl, lease.expiresAt));
  }

  deleteLeaseOn(c: StatementCache, id: string): void {
    this.exec(() => c.get(this.st.leaseDelete).run(BigInt(checkInt64(id, 'lease ID'))));
  }

  /** After every commit on the writer: the WAL may need a checkpoint of ours. */
  committed(): void {
    this.checkpoints?.afterCommit();
  }

  /** Runs a statement, turning transient SQLite failures into BackendUnavailableError. */
  exec<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw this.classify(err);
    }
  }

  /**
   * A COMMIT that failed for lack of space wrote no commit record: the transaction is rolled back for certain
   * (other failures, such as an I/O error on sync, leave the outcome unknown).
   */
  commitFailure(err: unknown): unknown {
    const classified = this.classify(err);
    if (!(classified instanceof BackendUnavailableError) || !/^SQLITE_FULL/.test(errorCode(err) ?? '')) return classified;
    return new BackendUnavailableError(classified.message, { cause: err, rolledBack: true });
  }

  private classify(err: unknown): unknown {
    return classify(err, transient, `${this.description}: SQLite database ${this.file}`, 'check the disk (space, permissions) and other processes using the file');
  }

  /** A read on the worker thread, its failures classified as those on the main thread are. */
  private async onThread<T>(fn: (t: SqliteReadThread) => Promise<T>): Promise<T> {
    if (!this.readThread) throw new Error(`${this.description}: the backend is not open (call open() first, and not after close())`);
    try {
      return await fn(this.readThread);
    } catch (err) {
      throw this.classify(err);
    }
  }

  private read<T>(op: Parameters<typeof timed>[1], fn: (reader: StatementCache) => T): Promise<T> {
    return timed('sqlite', op, () => this.exec(() => fn(this.open_(this.reader))));
  }

  private open_(c: StatementCache | undefined): StatementCache {
    if (!c) throw new Error(`${this.description}: the backend is not open (call open() first, and not after close())`);
    return c;
  }

  /**
   * Runs `fn` on the writer with no snapshot held by our other connections: the worker idle and holding new
   * reads, the main thread's reader idle (its reads are synchronous). Not when the writer is inside a
   * transaction (a routed write may keep it open across turns): that one's commit asks again.
   */
  private async whenQuiet<T>(fn: (writer: Database.Database) => T): Promise<T | undefined> {
    const thread = this.readThread;
    if (!thread) return undefined;
    return thread.whenIdle(async () => {
      // a write transaction begun on this turn ends before the next one starts
      await new Promise<void>((resolve) => setImmediate(resolve));
      const db = this.writer?.db;
      if (this.closing || !db?.open || db.inTransaction) return undefined;
      return this.exec(() => fn(db));
    });
  }

  private connect(reader: boolean): Database.Database {
    return connectSqlite(this.file, reader ? 'reader' : 'writer', this.description);
  }

  private async migrateSchema(db: Database.Database): Promise<void> {
    const c = new StatementCache(db);
    db.prepare('BEGIN IMMEDIATE').run();
    try {
      const found = await migrate(
        {
          run: async (sql, params = []) => db.prepare(sql).run(...params),
          meta: async (name) => (c.get(this.st.metaGet).get(name) as DbRow | undefined)?.value as Buffer | undefined,
          setMeta: async (name, value) => void c.get(this.st.metaSet).run(name, value),
        },
        sqliteDialect,
        this.description,
      );
      db.prepare('COMMIT').run();
      if (found === 0) log.info('created schema', { backend: this.description });
    } catch (err) {
      if (db.inTransaction) db.prepare('ROLLBACK').run();
      throw err;
    }
  }

  private compactBatch(revision: number, batchSize: number): number {
    const w = this.open_(this.writer);
    const deleted = this.exec(() => {
      w.get('BEGIN IMMEDIATE').run();
      try {
        const cursor = this.progress.position;
        const rows = (w.get(this.st.compactScan).all(...scanParams(cursor, revision, batchSize)) as DbRow[]).map(toScanRow);
        const plan = planBatch(rows, revision, batchSize, cursor);
        const del = w.get(this.st.deleteRow);
        let deleted = 0;
        for (const d of plan.deletions) deleted += del.run(d.name, d.rev).changes;
        w.get('COMMIT').run();
        this.progress.advance(plan);
        return deleted;
      } catch (err) {
        if (w.db.inTransaction) w.get('ROLLBACK').run();
        throw err;
      }
    });
    this.committed();
    return deleted;
  }
}

/** The WriteTxn of one SQLite write: synchronous calls on the writer connection, refused once it has ended. */
class SqliteWriteTxn implements SqlWriteTxn {
  private readonly life: TxnLifecycle;

  constructor(
    private readonly backend: SqliteBackend,
    private readonly c: StatementCache,
    release: () => void,
  ) {
    this.life = new TxnLifecycle(release, startTimer('sqlite', 'write'));
  }

  /** The writer connection, while the transaction has not ended. */
  private conn(): StatementCache {
    this.life.check();
    return this.c;
  }

  latest(key: Buffer): KeyRow | undefined {
    return this.backend.exec(() => this.backend.latestOn(this.conn(), key));
  }

  range(q: RangeQuery): KeyRow[] {
    return this.backend.exec(() => this.backend.rangeOn(this.conn(), q));
  }

  insert(rows: KeyRow[]): void {
    this.backend.insertOn(this.conn(), rows);
  }

  setMeta(name: string, value: Buffer): void {
    this.backend.setMetaOn(this.conn(), name, value);
  }

  lockMeta(name: string): Buffer | undefined {
    return this.backend.lockMetaOn(this.conn(), name);
  }

  putLease(lease: LeaseRow): void {
    this.backend.putLeaseOn(this.conn(), lease);
  }

  deleteLease(id: string): void {
    this.backend.deleteLeaseOn(this.conn(), id);
  }

  query(sql: string, params: unknown[]): DbRow[] {
    return this.backend.exec(() => this.conn().get(sql).all(...params) as DbRow[]);
  }

  execute(sql: string, params: unknown[]): number {
    return this.backend.exec(() => this.conn().get(sql).run(...params).changes);
  }

  async commit(): Promise<void> {
    const c = this.conn();
    try {
      c.get('COMMIT').run();
    } catch (err) {
      if (c.db.inTransaction) c.get('ROLLBACK').run();
      throw this.backend.commitFailure(err);
    } finally {
      this.life.end();
    }
    this.backend.committed();
  }

  async rollback(): Promise<void> {
    if (this.life.ended) return;
    try {
      if (this.c.db.open && this.c.db.inTransaction) this.c.get('ROLLBACK').run();
    } finally {
      this.life.end();
    }
  }
}

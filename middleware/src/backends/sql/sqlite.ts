/**
 * The SQLite backend (better-sqlite3). Two connections to one WAL database: the writer runs the single write
 * transaction and compaction batches (serialised by a lock), the reader serves every other read, so reads
 * never see a write transaction that is still open. better-sqlite3 is synchronous: every statement is a
 * cheap in-process call, which is why the WriteTxn methods return plain values instead of promises.
 */
import Database from 'better-sqlite3';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { logger } from '../../log.js';
import type { SqliteEndpoint } from '../../topology/endpoint.js';
import type { Backend, ChangeRow, CompactResult, KeyRow, LeaseRow, RangeQuery, WriteTxn } from '../backend.js';
import { CompactionProgress, planBatch, scanParams } from './compaction.js';
import { onConflictUpsert, type SqlDialect } from './dialect.js';
import { classify, errorCode, openFailure } from './errors.js';
import { Lock } from './lock.js';
import { timed } from './metrics.js';
import { MAX_KEY_BYTES, checkInt64, checkKeyLength, rowParams, toChangeRow, toKeyRow, toLeaseRow, toScanRow, type DbRow } from './rows.js';
import { migrate } from './schema.js';
import { keyAfter } from '../../mvcc/key-range.js';
import { CHUNK_ROWS, packedRangeSql, unpackRows } from './sqlite-pages.js';
import { Statements, rangeShape, shapeId, type RangeShape } from './statements.js';

export const sqliteDialect: SqlDialect = {
  name: 'sqlite',
  label: 'SQLite',
  types: { bigint: 'BIGINT', int: 'INTEGER', smallint: 'SMALLINT', key: 'BLOB', value: 'BLOB', name: 'TEXT', blob: 'BLOB' },
  tableOptions: '',
  maxKeyBytes: MAX_KEY_BYTES,
  clusteredByKey: false,
  coveringKeyIndex: false,
  probeFence: '',
  placeholders: (sql) => sql,
  // Integers come back as JS numbers; the cast keeps int64 lease IDs exact without safeIntegers on every column.
  int64Text: (column) => `CAST(${column} AS TEXT)`,
  upsert: onConflictUpsert,
};

const log = logger.child({ component: 'sql', dialect: 'sqlite' });
const BUSY_TIMEOUT_MS = 5000;
/**
 * Page cache per connection (one writer, one reader), in KiB. The OS page cache holds the rest of the
 * file; a larger cache buys little for indexed reads and costs resident memory at scale.
 */
const CACHE_KIB = 12 * 1024;
/** SQLite result codes that may pass: locks held by another process, I/O and disk-full, cannot open. */
const TRANSIENT = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|NOMEM|PROTOCOL|READONLY)/;
const TRANSIENT_FS = new Set(['ENOSPC', 'EACCES', 'EROFS', 'EIO', 'EPERM', 'ENOTDIR']);

function transient(err: unknown): boolean {
  const code = errorCode(err);
  return code !== undefined && (TRANSIENT.test(code) || TRANSIENT_FS.has(code));
}

type Stmt = Database.Statement<unknown[], unknown>;
type PackedRow = { bytes: Buffer | null; meta: string };

/** Prepared statements of one connection, prepared on first use. */
class StatementCache {
  private readonly byText = new Map<string, Stmt>();
  constructor(readonly db: Database.Database) {}

  get(sql: string): Stmt {
    let s = this.byText.get(sql);
    if (!s) {
      s = this.db.prepare<unknown[], unknown>(sql);
      this.byText.set(sql, s);
    }
    return s;
  }
}

const toBigInt = (decimal: string) => BigInt(decimal);

export class SqliteBackend implements Backend {
  readonly description: string;
  private readonly st = new Statements(sqliteDialect);
  private readonly packedSqls = new Map<number, string>();
  private readonly writeLock = new Lock();
  private readonly compactLock = new Lock();
  private readonly progress = new CompactionProgress();
  private writer?: StatementCache;
  private reader?: StatementCache;
  private file = '';
  /** Holds the database of `sqlite://:memory:` (a private temporary file: two connections must share it). */
  private tempDir?: string;
  private closing = false;

  constructor(
    private readonly endpoint: SqliteEndpoint,
    description: string,
  ) {
    this.description = description;
  }

  async open(): Promise<void> {
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
      log.debug('opened', { backend: this.description, file: this.file });
    } catch (err) {
      await this.close();
      throw openFailure(err, transient, this.description, `cannot open SQLite database ${this.file}`, 'check that the directory exists, is writable and the disk is not full');
    }
  }

  /** Stops a running compaction after its batch, waits for a running write, then closes both connections. */
  close(): Promise<void> {
    this.closing = true;
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
    return this.read(q.end === undefined ? 'get' : 'range', (r) => this.rangeOn(r, q));
  }

  async count(start: Buffer, end: Buffer | undefined, revision: number): Promise<number> {
    return this.read('count', (r) => {
      if (end === undefined) return this.rangeOn(r, { start, revision, limit: 1, keysOnly: true }).length;
      return Number((r.get(this.st.count(end.length > 0)).get(...this.st.countParams(start, end, revision)) as DbRow).n);
    });
  }

  async changes(from: number, to: number, limit: number): Promise<ChangeRow[]> {
    return this.read('changes', (r) => {
      const params: unknown[] = limit > 0 ? [from, to, limit] : [from, to];
      return (r.get(this.st.changes(limit > 0)).all(...params) as DbRow[]).map(toChangeRow);
    });
  }

  write<T>(fn: (tx: WriteTxn) => Promise<T>): Promise<T> {
    return this.writeLock.run(() =>
      timed('sqlite', 'write', async () => {
        const w = this.open_(this.writer);
        const tx = new SqliteWriteTxn(this, w);
        this.exec(() => w.get('BEGIN IMMEDIATE').run());
        try {
          const result = await fn(tx);
          tx.end();
          this.exec(() => w.get('COMMIT').run());
          return result;
        } catch (err) {
          tx.end();
          if (w.db.inTransaction) w.get('ROLLBACK').run();
          throw err;
        }
      }),
    );
  }

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
    // Ranges of more than one chunk read in one transaction: one snapshot, whatever commits meanwhile.
    if ((q.limit === 0 || q.limit > CHUNK_ROWS) && !c.db.inTransaction) return c.db.transaction(() => this.packedRange(c, q)).deferred();
    return this.packedRange(c, q);
  }

  /** A bounded range read CHUNK_ROWS keys at a time as packed rows (see sqlite-pages.ts). */
  private packedRange(c: StatementCache, q: RangeQuery): KeyRow[] {
    const shape = { ...rangeShape(q), limited: true };
    const packed = c.get(this.packedSql(shape));
    const rows: KeyRow[] = [];
    let start = q.start;
    for (;;) {
      const want = q.limit > 0 ? Math.min(CHUNK_ROWS, q.limit - rows.length) : CHUNK_ROWS;
      const got = unpackRows(packed.get(...this.st.rangeParams({ ...q, start, limit: want }, shape)) as PackedRow, rows);
      if (got < want || rows.length === q.limit) return rows;
      start = keyAfter(rows[rows.length - 1]!.key);
    }
  }

  private packedSql(shape: RangeShape): string {
    const id = shapeId(shape);
    let s = this.packedSqls.get(id);
    if (!s) {
      s = packedRangeSql(this.st.range(shape), shape.keysOnly);
      this.packedSqls.set(id, s);
    }
    return s;
  }

  latestOn(c: StatementCache, key: Buffer): KeyRow | undefined {
    const row = c.get(this.st.latest).get(key) as DbRow | undefined;
    return row && toKeyRow(row);
  }

  insertOn(c: StatementCache, rows: KeyRow[]): void {
    const insert = c.get(this.st.insertRow);
    for (const row of rows) {
      checkKeyLength(row.key, sqliteDialect.maxKeyBytes, this.description, sqliteDialect.label);
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

  /** Runs a statement, turning transient SQLite failures into BackendUnavailableError. */
  exec<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw classify(err, transient, `${this.description}: SQLite database ${this.file}`, 'check the disk (space, permissions) and other processes using the file');
    }
  }

  private read<T>(op: Parameters<typeof timed>[1], fn: (reader: StatementCache) => T): Promise<T> {
    return timed('sqlite', op, () => this.exec(() => fn(this.open_(this.reader))));
  }

  private open_(c: StatementCache | undefined): StatementCache {
    if (!c) throw new Error(`${this.description}: the backend is not open (call open() first, and not after close())`);
    return c;
  }

  private connect(reader: boolean): Database.Database {
    const db = new Database(this.file, { timeout: BUSY_TIMEOUT_MS });
    try {
      if (!reader) {
        const mode = db.pragma('journal_mode = WAL', { simple: true });
        if (String(mode).toLowerCase() !== 'wal') throw new Error(`${this.description}: SQLite refused WAL mode (got "${mode}") for ${this.file}: use a local file system`);
        db.pragma('synchronous = FULL');
      }
      db.pragma(`cache_size = -${CACHE_KIB}`);
      if (reader) db.pragma('query_only = ON');
      return db;
    } catch (err) {
      db.close();
      throw err;
    }
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
    return this.exec(() => {
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
  }
}

/** The WriteTxn of one SQLite write: synchronous calls on the writer connection, refused once it has ended. */
class SqliteWriteTxn implements WriteTxn {
  private active = true;

  constructor(
    private readonly backend: SqliteBackend,
    private readonly c: StatementCache,
  ) {}

  end(): void {
    this.active = false;
  }

  latest(key: Buffer): KeyRow | undefined {
    return this.backend.exec(() => this.backend.latestOn(this.check(), key));
  }

  range(q: RangeQuery): KeyRow[] {
    return this.backend.exec(() => this.backend.rangeOn(this.check(), q));
  }

  insert(rows: KeyRow[]): void {
    this.backend.insertOn(this.check(), rows);
  }

  setMeta(name: string, value: Buffer): void {
    this.backend.setMetaOn(this.check(), name, value);
  }

  lockMeta(name: string): Buffer | undefined {
    return this.backend.lockMetaOn(this.check(), name);
  }

  putLease(lease: LeaseRow): void {
    this.backend.putLeaseOn(this.check(), lease);
  }

  deleteLease(id: string): void {
    this.backend.deleteLeaseOn(this.check(), id);
  }

  private check(): StatementCache {
    if (!this.active) throw new Error('write transaction already ended: use the WriteTxn only inside the write() callback');
    return this.c;
  }
}

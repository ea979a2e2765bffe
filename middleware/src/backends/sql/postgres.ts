/**
 * PostgreSQL (pg): keys and values are BYTEA (bytewise order), statements are named so every pooled
 * connection prepares each once, multi-row inserts and compaction deletes pass arrays through unnest() so
 * each is one statement whatever the row count. pg returns int8 as decimal strings, so lease IDs stay exact.
 */
import { createHash } from 'node:crypto';
import pg from 'pg';
import { logger } from '../../log.js';
import type { SqlServerEndpoint } from '../../topology/endpoint.js';
import { parseDuration } from '../../topology/duration.js';
import type { BackendTLS, ConnectionPool } from '../../topology/schema.js';
import type { KeyRow } from '../backend.js';
import type { Deletion } from './compaction.js';
import { onConflictUpsert, type SqlDialect } from './dialect.js';
import { errorCode, messageOf } from './errors.js';
import { postgresConnectionLost, postgresTransient } from './postgres-errors.js';
import { MAX_KEY_BYTES, checkKeyLength, rowParams, type DbRow } from './rows.js';
import { DedicatedWriteConnection, type ServerDriver } from './server-store.js';
import type { SqlRunner, WriteConnection } from './write-connection.js';
import { Statements } from './statements.js';
import { postgresTls } from './tls.js';

export const postgresDialect: SqlDialect = {
  name: 'postgres',
  label: 'PostgreSQL',
  types: { bigint: 'BIGINT', int: 'INTEGER', smallint: 'SMALLINT', key: 'BYTEA', value: 'BYTEA', name: 'TEXT', blob: 'BYTEA' },
  tableOptions: '',
  maxKeyBytes: MAX_KEY_BYTES,
  clusteredByKey: false,
  coveringKeyIndex: true,
  probeFence: ' OFFSET 0',
  placeholders: (sql) => {
    let n = 0;
    return sql.replace(/\?/g, () => `$${++n}`);
  },
  int64Text: (column) => column,
  upsert: onConflictUpsert,
};

const log = logger.child({ component: 'sql', dialect: 'postgres' });
const CONNECT_TIMEOUT_MS = 5000;
const DEFAULT_MAX_OPEN = 10;
const INSERT_MANY =
  'INSERT INTO kv (rev, sub, name, value, create_rev, prev_rev, version, lease, deleted) ' +
  'SELECT * FROM unnest($1::bigint[], $2::int[], $3::bytea[], $4::bytea[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::smallint[])';
const DELETE_MANY = 'DELETE FROM kv USING unnest($1::bytea[], $2::bigint[]) AS d(name, rev) WHERE kv.name = d.name AND kv.rev = d.rev';
/** Serialises schema creation between middleware processes opening the same database. */
const SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(hashtext('harikube_schema'))";

const statementNames = new Map<string, string>();

/** A stable name per statement text, so each connection parses and plans it once. */
function statementName(sql: string): string {
  let name = statementNames.get(sql);
  if (!name) {
    name = `hk_${createHash('sha1').update(sql).digest('hex').slice(0, 24)}`;
    statementNames.set(sql, name);
  }
  return name;
}

class PgRunner implements SqlRunner {
  constructor(
    private readonly target: pg.Pool | pg.PoolClient | pg.Client,
    private readonly named: boolean,
    /** pg fails the query with "Query read timeout" after this long; 0: no limit. */
    private readonly timeoutMs: number,
  ) {}

  async query(sql: string, values: unknown[]): Promise<DbRow[]> {
    return (await this.target.query<DbRow>(this.config(sql, values))).rows;
  }

  async execute(sql: string, values: unknown[]): Promise<number> {
    return (await this.target.query(this.config(sql, values))).rowCount ?? 0;
  }

  private config(text: string, values: unknown[]): pg.QueryConfig {
    const q: pg.QueryConfig & { query_timeout?: number } = this.named ? { name: statementName(text), text, values } : { text, values };
    if (this.timeoutMs > 0) q.query_timeout = this.timeoutMs;
    return q;
  }
}

export class PostgresDriver implements ServerDriver {
  readonly dialect = postgresDialect;
  readonly hint: string;
  private readonly config: pg.ClientConfig;
  private readonly poolOptions: ConnectionPool;
  private pgPool?: pg.Pool;
  private readonly queryTimeoutMs: number;
  private readonly mustExist: boolean;
  private runner?: PgRunner;
  private readonly st = new Statements(postgresDialect);
  /** Each (key, revision) pair probes the index as `get` does; `i` is the pair's 0-based position. */
  private readonly getMany =
    'SELECT q.i - 1 AS i, l.* FROM unnest($1::bytea[], $2::bigint[]) WITH ORDINALITY AS q(name, rev, i) ' +
    `CROSS JOIN LATERAL (${this.st.getOf('q.name', 'q.rev')}) AS l`;
  private readonly latestMany = `SELECT l.* FROM unnest($1::bytea[]) AS q(name) CROSS JOIN LATERAL (${this.st.latestOf('q.name')}) AS l`;

  constructor(
    private readonly endpoint: SqlServerEndpoint,
    readonly description: string,
    options: { tls?: BackendTLS; pool?: ConnectionPool; queryTimeoutMs: number; mustExist?: boolean },
  ) {
    this.queryTimeoutMs = options.queryTimeoutMs;
    this.mustExist = options.mustExist === true;
    this.hint = `check that PostgreSQL is running at ${endpoint.host}:${endpoint.port} and accepts connections for user "${endpoint.user}"`;
    this.poolOptions = options.pool ?? {};
    this.config = {
      host: endpoint.host,
      port: endpoint.port,
      user: endpoint.user,
      password: endpoint.password,
      database: endpoint.database,
      ssl: postgresTls(description, endpoint.params, options.tls) ?? false,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      keepAlive: true,
      application_name: 'harikube',
    };
  }

  get pool(): SqlRunner {
    if (!this.runner) throw new Error(`${this.description}: the backend is not open (call open() first)`);
    return this.runner;
  }

  async connect(): Promise<void> {
    const p = this.poolOptions;
    if (p.maxIdle !== undefined) log.debug('pg has no max-idle setting: idle connections close after maxIdleLifeTime', { backend: this.description });
    this.pgPool = new pg.Pool({
      ...this.config,
      max: p.maxOpen || DEFAULT_MAX_OPEN,
      idleTimeoutMillis: p.maxIdleLifeTime !== undefined ? parseDuration(p.maxIdleLifeTime) : 30_000,
      maxLifetimeSeconds: p.maxLifeTime !== undefined ? parseDuration(p.maxLifeTime) / 1000 : 0,
    });
    // Idle pooled connections that break (server restart) are dropped by the pool; this only logs it.
    this.pgPool.on('error', (err) => log.warn('idle pooled connection broke', { backend: this.description, error: messageOf(err) }));
    this.runner = new PgRunner(this.pgPool, true, this.queryTimeoutMs);
    try {
      await this.pgPool.query('SELECT 1');
    } catch (err) {
      if (errorCode(err) !== '3D000') throw err; // 3D000: the database does not exist
      if (this.mustExist) throw new Error(`${this.description}: database "${this.endpoint.database}" does not exist`, { cause: err });
      await this.createDatabase();
      await this.pgPool.query('SELECT 1');
    }
  }

  async withSchemaLock<T>(fn: (c: SqlRunner) => Promise<T>): Promise<T> {
    const client = await this.pgPool!.connect();
    let broken: unknown;
    try {
      await client.query('BEGIN');
      await client.query(SCHEMA_LOCK);
      const result = await fn(new PgRunner(client, false, 0)); // migrations may wait for the lock and take long
      await client.query('COMMIT');
      return result;
    } catch (err) {
      broken = err;
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release(broken !== undefined);
    }
  }

  async openWriteConnection(): Promise<WriteConnection> {
    const client = new pg.Client(this.config);
    try {
      await client.connect();
    } catch (err) {
      client.end().catch(() => undefined);
      throw err;
    }
    const maxLife = this.poolOptions.maxLifeTime !== undefined ? parseDuration(this.poolOptions.maxLifeTime) : 0;
    const control = new PgRunner(client, false, this.queryTimeoutMs); // BEGIN/COMMIT/ROLLBACK: not prepared
    return new DedicatedWriteConnection(
      client,
      new PgRunner(client, true, this.queryTimeoutMs),
      { begin: 'BEGIN', run: (sql) => control.execute(sql, []), close: () => void client.end().catch(() => undefined) },
      maxLife,
      this.description,
    );
  }

  async insertRows(c: SqlRunner, rows: KeyRow[]): Promise<void> {
    for (const row of rows) checkKeyLength(row.key, MAX_KEY_BYTES, postgresDialect.label);
    if (rows.length === 1) {
      await c.execute(this.st.insertRow, rowParams(rows[0]!, (d) => d));
      return;
    }
    if (rows.length === 0) return;
    const columns: unknown[][] = Array.from({ length: 9 }, () => []);
    for (const row of rows) rowParams(row, (d) => d).forEach((v, i) => columns[i]!.push(v));
    await c.execute(INSERT_MANY, columns);
  }

  getRows(c: SqlRunner, gets: { key: Buffer; revision: number }[]): Promise<DbRow[]> {
    return c.query(this.getMany, [gets.map((g) => g.key), gets.map((g) => g.revision)]);
  }

  /** One statement whatever the count: a single row, or arrays through unnest(). */
  insertIsOneStatement(rows: KeyRow[]): boolean {
    return rows.length > 0;
  }

  /** One statement for any number of keys: each element of the key array probes the index as `latest` does. */
  latestRows(c: SqlRunner, keys: Buffer[]): Promise<DbRow[]> {
    return c.query(this.latestMany, [keys]);
  }

  deleteRows(c: SqlRunner, rows: Deletion[]): Promise<number> {
    return c.execute(
      DELETE_MANY,
      [rows.map((r) => r.name), rows.map((r) => r.rev)],
    );
  }

  int64(decimal: string): unknown {
    return decimal;
  }

  async sizeBytes(): Promise<number> {
    return Number((await this.pool.query('SELECT pg_database_size(current_database()) AS n', []))[0]!.n);
  }

  transient(err: unknown): boolean {
    return postgresTransient(err);
  }

  connectionLost(err: unknown): boolean {
    return postgresConnectionLost(err);
  }

  async close(): Promise<void> {
    const p = this.pgPool;
    this.pgPool = this.runner = undefined;
    if (p && !p.ended) await p.end();
  }

  private async createDatabase(): Promise<void> {
    const db = this.endpoint.database;
    let lastErr: unknown;
    // The server-level database to connect to for CREATE DATABASE: "postgres", else "template1".
    for (const adminDb of ['postgres', 'template1']) {
      const admin = new pg.Client({ ...this.config, database: adminDb });
      try {
        await admin.connect();
        await admin.query(`CREATE DATABASE "${db}"`);
        log.info('created database', { backend: this.description });
        return;
      } catch (err) {
        // 42P04 / 23505: another process created it first.
        if (errorCode(err) === '42P04' || errorCode(err) === '23505') return;
        lastErr = err;
        if (errorCode(err) !== '3D000') break;
      } finally {
        await admin.end().catch(() => undefined);
      }
    }
    if (this.transient(lastErr)) throw lastErr;
    throw new Error(`${this.description}: database "${db}" does not exist and creating it failed: ${messageOf(lastErr)}; create it or grant CREATEDB`, {
      cause: lastErr,
    });
  }
}

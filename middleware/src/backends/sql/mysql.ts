/**
 * MySQL and MariaDB (mysql2): keys are VARBINARY (binary comparison, no collation, no trailing-space
 * padding), values LONGBLOB. Statements run as server-side prepared statements (`execute`), cached per
 * connection. mysql2 returns BIGINT as strings (`bigNumberStrings`), so lease IDs stay exact.
 *
 * Two server limits shape the writes: InnoDB's 3072-byte index key limit (the unique (name, rev) index;
 * keys are capped at MAX_KEY_BYTES well below it) and `max_allowed_packet` (one statement must fit; inserts
 * are split to fit and a single row that cannot fit is refused with an error saying what to raise).
 */
import type { ConnectionOptions } from 'node:tls';
import mysql from 'mysql2/promise';
import { logger } from '../../log.js';
import type { SqlServerEndpoint } from '../../topology/endpoint.js';
import { parseDuration } from '../../topology/duration.js';
import type { BackendTLS, ConnectionPool } from '../../topology/schema.js';
import type { KeyRow } from '../backend.js';
import type { Deletion } from './compaction.js';
import { marks, type SqlDialect } from './dialect.js';
import { errorCode, messageOf } from './errors.js';
import { mysqlConnectionLost, mysqlTransient } from './mysql-errors.js';
import { MAX_KEY_BYTES, checkKeyLength, rowParams, type DbRow } from './rows.js';
import { DedicatedWriteConnection, type ServerDriver } from './server-store.js';
import type { SqlRunner, WriteConnection } from './write-connection.js';
import { Statements } from './statements.js';
import { mysqlTls } from './tls.js';

export const mysqlDialect: SqlDialect = {
  name: 'mysql',
  label: 'MySQL',
  types: {
    bigint: 'BIGINT',
    int: 'INT',
    smallint: 'SMALLINT',
    key: `VARBINARY(${MAX_KEY_BYTES})`,
    value: 'LONGBLOB',
    name: 'VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin',
    blob: 'LONGBLOB',
  },
  tableOptions: ' ENGINE=InnoDB ROW_FORMAT=DYNAMIC',
  maxKeyBytes: MAX_KEY_BYTES,
  clusteredByKey: true,
  coveringKeyIndex: false,
  probeFence: '',
  placeholders: (sql) => sql,
  int64Text: (column) => column,
  // VALUES() rather than the row alias of MySQL 8.0.19+: MariaDB knows only VALUES().
  upsert: (table, key, columns) =>
    `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${marks(columns.length)}) ON DUPLICATE KEY UPDATE ` +
    columns
      .filter((c) => c !== key)
      .map((c) => `${c} = VALUES(${c})`)
      .join(', '),
};

const log = logger.child({ component: 'sql', dialect: 'mysql' });
const CONNECT_TIMEOUT_MS = 5000;
const DEFAULT_MAX_OPEN = 10;
/** Rows per multi-row INSERT (each count is one more prepared statement per connection). */
const INSERT_CHUNK = 64;
/** Keys per statement reading the newest rows of a write batch's keys (see latestRows). */
const LATEST_CHUNK = 64;
/** (name, rev) pairs per compaction DELETE; shorter lists are padded with repeats so one statement serves all. */
const DELETE_CHUNK = 100;
/** Bytes of one row in an execute packet besides key and value (types, lengths, integers). */
const ROW_OVERHEAD = 128;
/** Packet header, statement ID and parameter bitmaps. */
const PACKET_RESERVE = 4096;
const SCHEMA_LOCK_TIMEOUT_S = 30;
/** One (name, rev) equality per pair: MariaDB and MySQL plan it as that many ranges of the unique index. */
const DELETE_MANY = `DELETE FROM kv WHERE ${Array.from({ length: DELETE_CHUNK }, () => '(name = ? AND rev = ?)').join(' OR ')}`;

/**
 * Integers go over as decimal strings: mysql2 sends JS numbers as DOUBLE, which MySQL 8.0.22+ refuses for
 * LIMIT; the server converts strings exactly.
 */
function bind(params: unknown[]): (string | Buffer)[] {
  return params.map((p) => (typeof p === 'number' ? String(p) : p)) as (string | Buffer)[];
}

/** Node TLS options in mysql2's shape (which checks the host name only when asked to). */
function sslOptions(tls: ConnectionOptions | undefined): mysql.SslOptions | undefined {
  if (!tls) return undefined;
  const verify = tls.rejectUnauthorized !== false;
  return {
    ca: tls.ca as Buffer | undefined,
    cert: tls.cert as Buffer | undefined,
    key: tls.key as Buffer | undefined,
    rejectUnauthorized: verify,
    verifyIdentity: verify && tls.checkServerIdentity === undefined,
  };
}

type MysqlTarget = mysql.Pool | mysql.PoolConnection | mysql.Connection;

class MysqlRunner implements SqlRunner {
  constructor(
    private readonly target: MysqlTarget,
    /** A statement still running after this long fails and its connection is closed; 0: no limit. */
    private readonly timeoutMs: number,
    /** Text protocol (for DDL and locks, which are not worth preparing). */
    private readonly text = false,
  ) {}

  async query(sql: string, params: unknown[]): Promise<DbRow[]> {
    const [rows] = await this.run(sql, params);
    return rows as DbRow[];
  }

  async execute(sql: string, params: unknown[]): Promise<number> {
    const [result] = await this.run(sql, params);
    return (result as mysql.ResultSetHeader).affectedRows;
  }

  private async run(sql: string, params: unknown[]) {
    if (this.timeoutMs <= 0) return this.send(this.target, sql, params);
    // mysql2's own `timeout` does not cover prepared statements, and a destroyed connection does not fail
    // the statement it was running: race a timer, on a connection of our own so the hung one can be closed
    const pooled = 'getConnection' in this.target;
    const conn = pooled ? await (this.target as mysql.Pool).getConnection() : (this.target as mysql.Connection);
    const sent = this.send(conn, sql, params);
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        sent.catch(() => undefined); // settles, if ever, after the caller has moved on
        conn.destroy();
        reject(
          Object.assign(new Error(`no answer to a statement within ${this.timeoutMs} ms (--query-timeout); its connection was closed`), {
            code: 'PROTOCOL_SEQUENCE_TIMEOUT',
            fatal: true,
          }),
        );
      }, this.timeoutMs);
    });
    try {
      const result = await Promise.race([sent, expired]);
      if (pooled) (conn as mysql.PoolConnection).release();
      return result;
    } catch (err) {
      // a connection whose statement failed goes back unless it was closed (mysql2 drops fatal ones itself)
      if (pooled && (err as { code?: string }).code !== 'PROTOCOL_SEQUENCE_TIMEOUT') (conn as mysql.PoolConnection).release();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private send(target: MysqlTarget, sql: string, params: unknown[]) {
    return this.text ? target.query(sql, bind(params)) : target.execute(sql, bind(params));
  }
}

export class MysqlDriver implements ServerDriver {
  readonly dialect = mysqlDialect;
  readonly hint: string;
  private readonly config: mysql.ConnectionOptions;
  private readonly poolOptions: ConnectionPool;
  private mysqlPool?: mysql.Pool;
  private readonly queryTimeoutMs: number;
  private readonly mustExist: boolean;
  private runner?: MysqlRunner;
  private maxPacket = 0;
  private readonly st = new Statements(mysqlDialect);

  constructor(
    private readonly endpoint: SqlServerEndpoint,
    readonly description: string,
    options: { tls?: BackendTLS; pool?: ConnectionPool; queryTimeoutMs: number; mustExist?: boolean },
  ) {
    this.queryTimeoutMs = options.queryTimeoutMs;
    this.mustExist = options.mustExist === true;
    this.hint = `check that MySQL/MariaDB is running at ${endpoint.host}:${endpoint.port} and accepts connections for user "${endpoint.user}"`;
    this.poolOptions = options.pool ?? {};
    this.config = {
      host: endpoint.host,
      port: endpoint.port,
      user: endpoint.user,
      password: endpoint.password,
      database: endpoint.database,
      ssl: sslOptions(mysqlTls(description, endpoint.params, options.tls)),
      connectTimeout: CONNECT_TIMEOUT_MS,
      supportBigNumbers: true,
      bigNumberStrings: true,
      enableKeepAlive: true,
    };
  }

  get pool(): SqlRunner {
    if (!this.runner) throw new Error(`${this.description}: the backend is not open (call open() first)`);
    return this.runner;
  }

  async connect(): Promise<void> {
    const p = this.poolOptions;
    if (p.maxLifeTime !== undefined) log.debug('mysql2 pools have no connection lifetime: maxLifeTime applies to the write connection only', { backend: this.description });
    const maxOpen = p.maxOpen || DEFAULT_MAX_OPEN;
    this.mysqlPool = mysql.createPool({
      ...this.config,
      connectionLimit: maxOpen,
      maxIdle: p.maxIdle ?? maxOpen,
      idleTimeout: p.maxIdleLifeTime !== undefined ? parseDuration(p.maxIdleLifeTime) : 60_000,
      waitForConnections: true,
      queueLimit: 0,
    });
    // The pool drops a connection on its first error; this listener keeps any later one from going unhandled.
    this.mysqlPool.on('connection', (conn) =>
      (conn as unknown as NodeJS.EventEmitter).on('error', (err: unknown) =>
        log.debug('pooled connection broke', { backend: this.description, error: messageOf(err) }),
      ),
    );
    this.runner = new MysqlRunner(this.mysqlPool, this.queryTimeoutMs);
    let rows: DbRow[];
    try {
      rows = await this.runner.query('SELECT @@max_allowed_packet AS m', []);
    } catch (err) {
      if (errorCode(err) !== 'ER_BAD_DB_ERROR') throw err;
      if (this.mustExist) throw new Error(`${this.description}: database "${this.endpoint.database}" does not exist`, { cause: err });
      await this.createDatabase();
      rows = await this.runner.query('SELECT @@max_allowed_packet AS m', []);
    }
    this.maxPacket = Number(rows[0]!.m);
  }

  async withSchemaLock<T>(fn: (c: SqlRunner) => Promise<T>): Promise<T> {
    const conn = await this.mysqlPool!.getConnection();
    const lock = `harikube_schema.${this.endpoint.database}`;
    try {
      const [rows] = await conn.query('SELECT GET_LOCK(?, ?) AS ok', [lock, SCHEMA_LOCK_TIMEOUT_S]);
      if (Number((rows as DbRow[])[0]?.ok) !== 1) {
        throw new Error(`${this.description}: waited ${SCHEMA_LOCK_TIMEOUT_S} s for the schema lock "${lock}" held by another HariKube opening this database; retry once it is done`);
      }
      try {
        return await fn(new MysqlRunner(conn, 0, true)); // migrations may take long (DDL)
      } finally {
        await conn.query('SELECT RELEASE_LOCK(?)', [lock]).catch(() => undefined);
      }
    } finally {
      conn.release();
    }
  }

  async openWriteConnection(): Promise<WriteConnection> {
    const conn = await mysql.createConnection(this.config);
    const maxLife = this.poolOptions.maxLifeTime !== undefined ? parseDuration(this.poolOptions.maxLifeTime) : 0;
    const control = new MysqlRunner(conn, this.queryTimeoutMs, true);
    return new DedicatedWriteConnection(
      conn,
      new MysqlRunner(conn, this.queryTimeoutMs),
      { begin: 'START TRANSACTION', run: (sql) => control.query(sql, []), close: () => conn.destroy() },
      maxLife,
      this.description,
    );
  }

  async insertRows(c: SqlRunner, rows: KeyRow[]): Promise<void> {
    for (const chunk of this.insertChunks(rows)) {
      const params: unknown[] = [];
      for (const row of chunk) params.push(...rowParams(row, (d) => d));
      await c.execute(chunk.length === 1 ? this.st.insertRow : this.st.insertRows(chunk.length), params);
    }
  }

  insertIsOneStatement(rows: KeyRow[]): boolean {
    return this.insertChunks(rows).length === 1;
  }

  /** `rows` split into statements of at most INSERT_CHUNK rows that fit max_allowed_packet. */
  private insertChunks(rows: KeyRow[]): KeyRow[][] {
    const budget = this.maxPacket - PACKET_RESERVE;
    const chunks: KeyRow[][] = [];
    let chunk: KeyRow[] = [];
    let bytes = 0;
    for (const row of rows) {
      checkKeyLength(row.key, MAX_KEY_BYTES, mysqlDialect.label);
      const size = row.key.length + row.value.length + ROW_OVERHEAD;
      if (size > budget) {
        throw new Error(
          `${this.description}: the row of key "${row.key.subarray(0, 40).toString('latin1')}" needs ${size} bytes but the server's ` +
            `max_allowed_packet is ${this.maxPacket} bytes: raise max_allowed_packet on the MySQL/MariaDB server to at least 4M ` +
            `(etcd allows 1.5 MiB requests), e.g. max_allowed_packet=64M in its configuration`,
        );
      }
      if (chunk.length === INSERT_CHUNK || (chunk.length > 0 && bytes + size > budget)) {
        chunks.push(chunk);
        chunk = [];
        bytes = 0;
      }
      chunk.push(row);
      bytes += size;
    }
    if (chunk.length > 0) chunks.push(chunk);
    return chunks;
  }

  /** UNION ALL of `get` probes, padded like `latestRows` (the padding repeats the last get, the same `i`). */
  async getRows(c: SqlRunner, gets: { key: Buffer; revision: number }[]): Promise<DbRow[]> {
    const rows: DbRow[] = [];
    for (let i = 0; i < gets.length; i += LATEST_CHUNK) {
      const part = gets.slice(i, i + LATEST_CHUNK);
      let n = 1;
      while (n < part.length) n *= 2;
      const params: unknown[] = [];
      for (let j = 0; j < n; j++) {
        const k = Math.min(j, part.length - 1);
        params.push(i + k, part[k]!.key, part[k]!.revision);
      }
      rows.push(...(await c.query(this.st.getsOf(n), params)));
    }
    return rows;
  }

  /**
   * UNION ALL of `latest` per key (MariaDB has no LATERAL), LATEST_CHUNK keys per statement; shorter lists
   * are padded to the next power of two with repeats, so a few prepared statements serve every count.
   */
  async latestRows(c: SqlRunner, keys: Buffer[]): Promise<DbRow[]> {
    const rows: DbRow[] = [];
    for (let i = 0; i < keys.length; i += LATEST_CHUNK) {
      const part = keys.slice(i, i + LATEST_CHUNK);
      let n = 1;
      while (n < part.length) n *= 2;
      const params = Array.from({ length: n }, (_, j) => part[Math.min(j, part.length - 1)]);
      rows.push(...(await c.query(this.st.latestOfKeys(n), params)));
    }
    return rows;
  }

  async deleteRows(c: SqlRunner, rows: Deletion[]): Promise<number> {
    const sql = DELETE_MANY;
    let deleted = 0;
    for (let i = 0; i < rows.length; i += DELETE_CHUNK) {
      const part = rows.slice(i, i + DELETE_CHUNK);
      const params: unknown[] = [];
      for (let j = 0; j < DELETE_CHUNK; j++) {
        const r = part[Math.min(j, part.length - 1)]!;
        params.push(r.name, r.rev);
      }
      deleted += await c.execute(sql, params);
    }
    return deleted;
  }

  int64(decimal: string): unknown {
    return decimal;
  }

  async sizeBytes(): Promise<number> {
    const rows = await this.pool.query(
      'SELECT COALESCE(SUM(data_length + index_length), 0) AS n FROM information_schema.tables WHERE table_schema = DATABASE()',
      [],
    );
    return Number(rows[0]!.n);
  }

  transient(err: unknown): boolean {
    return mysqlTransient(err);
  }

  connectionLost(err: unknown): boolean {
    return mysqlConnectionLost(err);
  }

  async close(): Promise<void> {
    const p = this.mysqlPool;
    this.mysqlPool = this.runner = undefined;
    await p?.end();
  }

  private async createDatabase(): Promise<void> {
    const admin = await mysql.createConnection({ ...this.config, database: undefined });
    try {
      await admin.query(`CREATE DATABASE IF NOT EXISTS \`${this.endpoint.database}\``);
      log.info('created database', { backend: this.description });
    } finally {
      await admin.end().catch(() => undefined);
    }
  }
}

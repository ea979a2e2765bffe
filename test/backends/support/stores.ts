/**
 * The stores backend tests run against: a temp SQLite file, or a uniquely named PostgreSQL / MariaDB
 * database that the backend itself creates on first open. Each gives an admin side door (SQL outside the
 * backend, killing its connections) and removes everything in `dispose()`.
 */
import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';
import type { Backend } from '../../../middleware/src/backends/backend.js';
import { openBackend } from '../../../middleware/src/backends/index.js';
import { parseEndpoint, type SqlServerEndpoint } from '../../../middleware/src/topology/endpoint.js';
import { MYSQL_URL, POSTGRES_URL, mysqlEndpoint, postgresEndpoint, uniqueDatabaseName } from '../../support/env.js';

export type StoreKind = 'sqlite' | 'postgres' | 'mysql';
export type SqlRow = Record<string, unknown>;

export interface StoreHarness {
  readonly kind: StoreKind;
  readonly endpoint: string;
  /** The database name (server stores) or file path (SQLite), as error messages name it. */
  readonly name: string;
  /** A new, unopened backend on this store. */
  backend(): Backend;
  /** Empties the store (drops the tables or deletes the file) so the next backend starts fresh. */
  reset(): Promise<void>;
  /** Runs SQL in the store's database on an admin connection, outside any backend. */
  sql(text: string, params?: unknown[]): Promise<SqlRow[]>;
  /** Kills every server connection to the store's database except the admin ones; returns how many. */
  killConnections(): Promise<number>;
  dispose(): Promise<void>;
}

function server(url: string): SqlServerEndpoint {
  const e = parseEndpoint(url);
  if (e.kind !== 'postgres' && e.kind !== 'mysql') throw new Error(`not a SQL server URL: ${url}`);
  return e;
}

export async function sqliteStore(): Promise<StoreHarness> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hk-backend-'));
  // Nested, not yet existing directories: the backend must create them.
  const file = path.join(dir, 'nested', 'dirs', 'state.db');
  const endpoint = `sqlite://${file}`;
  return {
    kind: 'sqlite',
    endpoint,
    name: file,
    backend: () => openBackend(endpoint),
    reset: () => rm(path.join(dir, 'nested'), { recursive: true, force: true }),
    async sql(text, params = []) {
      const db = new Database(file);
      try {
        const stmt = db.prepare(text);
        return stmt.reader ? (stmt.all(...params) as SqlRow[]) : (stmt.run(...params), []);
      } finally {
        db.close();
      }
    },
    killConnections: async () => 0,
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
}

export async function postgresStore(): Promise<StoreHarness> {
  const db = uniqueDatabaseName('hk_backend');
  const endpoint = postgresEndpoint(db);
  const s = server(POSTGRES_URL);
  const base = { host: s.host, port: s.port, user: s.user, password: s.password };
  const admin = new pg.Client({ ...base, database: s.database });
  await admin.connect();
  let inDb: pg.Client | undefined;
  const dbClient = async () => {
    if (!inDb) {
      inDb = new pg.Client({ ...base, database: db });
      await inDb.connect();
    }
    return inDb;
  };
  return {
    kind: 'postgres',
    endpoint,
    name: db,
    backend: () => openBackend(endpoint),
    async reset() {
      const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [db]);
      if (exists.rowCount) await (await dbClient()).query('DROP TABLE IF EXISTS kv, meta, leases');
    },
    async sql(text, params = []) {
      return (await (await dbClient()).query(text, params)).rows as SqlRow[];
    },
    async killConnections() {
      const own = inDb ? ((await inDb.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number) : 0;
      const r = await admin.query(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND pid <> $2',
        [db, own],
      );
      return r.rowCount ?? 0;
    },
    async dispose() {
      await inDb?.end();
      await admin.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
      await admin.end();
    },
  };
}

export async function mysqlStore(): Promise<StoreHarness> {
  const db = uniqueDatabaseName('hk_backend');
  const endpoint = mysqlEndpoint(db);
  const s = server(MYSQL_URL);
  const base = { host: s.host, port: s.port, user: s.user, password: s.password, supportBigNumbers: true, bigNumberStrings: true };
  const admin = await mysql.createConnection(base);
  const adminId = Number(((await admin.query('SELECT CONNECTION_ID() AS id'))[0] as SqlRow[])[0]!.id);
  return {
    kind: 'mysql',
    endpoint,
    name: db,
    backend: () => openBackend(endpoint),
    async reset() {
      const [rows] = await admin.query('SELECT 1 FROM information_schema.schemata WHERE schema_name = ?', [db]);
      if ((rows as SqlRow[]).length > 0) await admin.query(`DROP TABLE IF EXISTS \`${db}\`.kv, \`${db}\`.meta, \`${db}\`.leases`);
    },
    async sql(text, params = []) {
      await admin.query(`USE \`${db}\``);
      const [rows] = await admin.query(text, params);
      return Array.isArray(rows) ? (rows as SqlRow[]) : [];
    },
    async killConnections() {
      const [rows] = await admin.query('SELECT id FROM information_schema.processlist WHERE db = ? AND id <> ?', [db, adminId]);
      for (const r of rows as SqlRow[]) await admin.query(`KILL CONNECTION ${Number(r.id)}`).catch(() => undefined);
      return (rows as SqlRow[]).length;
    },
    async dispose() {
      await admin.query(`DROP DATABASE IF EXISTS \`${db}\``);
      await admin.end();
    },
  };
}

export const STORES: Record<StoreKind, () => Promise<StoreHarness>> = {
  sqlite: sqliteStore,
  postgres: postgresStore,
  mysql: mysqlStore,
};

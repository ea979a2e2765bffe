/**
 * A storage location a test owns for the middleware: a temp SQLite file, or a uniquely named PostgreSQL /
 * MariaDB database (the middleware creates it on first start; dispose() drops it).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { parseEndpoint, type SqlServerEndpoint } from '../../middleware/src/topology/endpoint.js';
import { MYSQL_URL, POSTGRES_URL, mysqlEndpoint, postgresEndpoint, uniqueDatabaseName } from './env.js';

export type StoreKind = 'sqlite' | 'postgres' | 'mysql';

export interface ScratchStore {
  readonly kind: StoreKind;
  /** The middleware's --endpoint. */
  readonly endpoint: string;
  /** Removes the file or drops the database (the middleware must be stopped first). */
  dispose(): Promise<void>;
}

function serverEndpoint(url: string): SqlServerEndpoint {
  const e = parseEndpoint(url);
  if (e.kind !== 'postgres' && e.kind !== 'mysql') throw new Error(`not a SQL server URL: ${url}`);
  return e;
}

async function dropPostgres(db: string): Promise<void> {
  const s = serverEndpoint(POSTGRES_URL);
  const client = new pg.Client({ host: s.host, port: s.port, user: s.user, password: s.password, database: s.database });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

async function dropMysql(db: string): Promise<void> {
  const s = serverEndpoint(MYSQL_URL);
  const conn = await mysql.createConnection({ host: s.host, port: s.port, user: s.user, password: s.password });
  try {
    await conn.query(`DROP DATABASE IF EXISTS \`${db}\``);
  } finally {
    await conn.end();
  }
}

export async function createScratchStore(kind: StoreKind): Promise<ScratchStore> {
  if (kind === 'sqlite') {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'hk-sqlite-'));
    return {
      kind,
      endpoint: `sqlite://${path.join(dir, 'state.db')}`,
      dispose: () => rm(dir, { recursive: true, force: true }),
    };
  }
  const db = uniqueDatabaseName('hk_contract');
  if (kind === 'postgres') return { kind, endpoint: postgresEndpoint(db), dispose: () => dropPostgres(db) };
  return { kind, endpoint: mysqlEndpoint(db), dispose: () => dropMysql(db) };
}

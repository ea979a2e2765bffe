/**
 * What a SQL backend physically holds, read straight from its database (not through the middleware): key
 * names, revisions and row counts in its `kv` table, tombstones and old versions included. For checks such
 * as "the migration source holds none of the moved keys" or "compaction removed the old rows, not just hid
 * them".
 */
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { parseEndpoint } from '../../middleware/src/topology/endpoint.js';
import { prefixEnd } from './bytes.js';

type Row = Record<string, unknown>;

/** Rows of `sql` (placeholders `?`) on the database of `endpoint` (sqlite://, postgres://, mysql://), over a connection of its own. */
async function storedQuery(endpoint: string, sql: string, params: unknown[], what: string): Promise<Row[]> {
  const e = parseEndpoint(endpoint);
  if (e.kind === 'sqlite') {
    const db = new Database(e.path, { readonly: true, fileMustExist: true });
    try {
      return db.prepare(sql).all(...params) as Row[];
    } finally {
      db.close();
    }
  }
  if (e.kind === 'postgres') {
    const client = new pg.Client({ host: e.host, port: e.port, user: e.user, password: e.password, database: e.database });
    await client.connect();
    try {
      let n = 0;
      return (await client.query(sql.replace(/\?/g, () => `$${++n}`), params)).rows as Row[];
    } finally {
      await client.end();
    }
  }
  if (e.kind === 'mysql') {
    const conn = await mysql.createConnection({ host: e.host, port: e.port, user: e.user, password: e.password, database: e.database });
    try {
      return (await conn.query(sql, params))[0] as Row[];
    } finally {
      await conn.end();
    }
  }
  throw new Error(`${what}: ${e.kind} endpoints are not SQL databases`);
}

/** Distinct key names (sorted) stored in the database of `endpoint`. */
export async function storedKeys(endpoint: string): Promise<string[]> {
  const rows = await storedQuery(endpoint, 'SELECT DISTINCT name FROM kv', [], 'storedKeys');
  return rows.map((r) => Buffer.from(r.name as Buffer).toString('utf8')).sort();
}

/** Revisions of `key` stored in the database of `endpoint` (empty: the key is not there at all). */
export async function storedRevisions(endpoint: string, key: string): Promise<number[]> {
  const rows = await storedQuery(endpoint, 'SELECT rev FROM kv WHERE name = ? ORDER BY rev', [Buffer.from(key, 'utf8')], 'storedRevisions');
  return rows.map((r) => Number(r.rev));
}

/** Rows of `kv` (every revision and tombstone) whose key starts with `prefix`, in the database of `endpoint`. */
export async function storedRowCount(endpoint: string, prefix: string): Promise<number> {
  const rows = await storedQuery(endpoint, 'SELECT COUNT(*) AS n FROM kv WHERE name >= ? AND name < ?', [Buffer.from(prefix, 'utf8'), prefixEnd(prefix)], 'storedRowCount');
  return Number(rows[0]!.n);
}

/**
 * Rows a SQL backend physically holds under a key prefix, read straight from its `kv` table (every
 * revision and tombstone, not what the API shows): the compaction phase's evidence that old revisions are
 * gone from the database, not just hidden.
 */
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { parseEndpoint } from '../middleware/src/topology/endpoint.js';
import { prefixEnd } from '../test/support/bytes.js';

/** Rows of `kv` whose key starts with `prefix`, in the database of `endpoint` (sqlite://, postgres://, mysql://). */
export async function storedRowCount(endpoint: string, prefix: string): Promise<number> {
  const e = parseEndpoint(endpoint);
  const from = Buffer.from(prefix, 'utf8');
  const to = prefixEnd(prefix);
  if (e.kind === 'sqlite') {
    const db = new Database(e.path, { readonly: true, fileMustExist: true });
    try {
      return Number((db.prepare('SELECT COUNT(*) AS n FROM kv WHERE name >= ? AND name < ?').get(from, to) as { n: number | bigint }).n);
    } finally {
      db.close();
    }
  }
  if (e.kind === 'postgres') {
    const client = new pg.Client({ host: e.host, port: e.port, user: e.user, password: e.password, database: e.database });
    await client.connect();
    try {
      return Number((await client.query<{ n: string }>('SELECT COUNT(*) AS n FROM kv WHERE name >= $1 AND name < $2', [from, to])).rows[0]!.n);
    } finally {
      await client.end();
    }
  }
  if (e.kind === 'mysql') {
    const conn = await mysql.createConnection({ host: e.host, port: e.port, user: e.user, password: e.password, database: e.database });
    try {
      const [rows] = await conn.query('SELECT COUNT(*) AS n FROM kv WHERE name >= ? AND name < ?', [from, to]);
      return Number((rows as { n: number | string }[])[0]!.n);
    } finally {
      await conn.end();
    }
  }
  throw new Error(`storedRowCount: ${e.kind} endpoints are not SQL databases`);
}

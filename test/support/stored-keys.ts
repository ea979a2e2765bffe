/**
 * What a SQL backend physically holds, read straight from its database (not through the middleware): the
 * distinct key names in its `kv` table, tombstones and old versions included. For checks such as "the
 * migration source holds none of the moved keys".
 */
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { parseEndpoint } from '../../middleware/src/topology/endpoint.js';

/** Distinct key names (sorted) stored in the database of `endpoint` (sqlite://, postgres://, mysql://). */
export async function storedKeys(endpoint: string): Promise<string[]> {
  const e = parseEndpoint(endpoint);
  let names: Buffer[];
  if (e.kind === 'sqlite') {
    const db = new Database(e.path, { readonly: true, fileMustExist: true });
    try {
      names = (db.prepare('SELECT DISTINCT name FROM kv').all() as { name: Buffer }[]).map((r) => r.name);
    } finally {
      db.close();
    }
  } else if (e.kind === 'postgres') {
    const client = new pg.Client({ host: e.host, port: e.port, user: e.user, password: e.password, database: e.database });
    await client.connect();
    try {
      names = (await client.query<{ name: Buffer }>('SELECT DISTINCT name FROM kv')).rows.map((r) => r.name);
    } finally {
      await client.end();
    }
  } else if (e.kind === 'mysql') {
    const conn = await mysql.createConnection({ host: e.host, port: e.port, user: e.user, password: e.password, database: e.database });
    try {
      const [rows] = await conn.query('SELECT DISTINCT name FROM kv');
      names = (rows as { name: Buffer }[]).map((r) => r.name);
    } finally {
      await conn.end();
    }
  } else {
    throw new Error(`storedKeys: ${e.kind} endpoints are not SQL databases`);
  }
  return names.map((n) => Buffer.from(n).toString('utf8')).sort();
}

/** Revisions of `key` stored in the database of `endpoint` (empty: the key is not there at all). */
export async function storedRevisions(endpoint: string, key: string): Promise<number[]> {
  const e = parseEndpoint(endpoint);
  const k = Buffer.from(key, 'utf8');
  if (e.kind === 'sqlite') {
    const db = new Database(e.path, { readonly: true, fileMustExist: true });
    try {
      return (db.prepare('SELECT rev FROM kv WHERE name = ? ORDER BY rev').all(k) as { rev: number | bigint }[]).map((r) => Number(r.rev));
    } finally {
      db.close();
    }
  }
  if (e.kind === 'postgres') {
    const client = new pg.Client({ host: e.host, port: e.port, user: e.user, password: e.password, database: e.database });
    await client.connect();
    try {
      return (await client.query<{ rev: string }>('SELECT rev FROM kv WHERE name = $1 ORDER BY rev', [k])).rows.map((r) => Number(r.rev));
    } finally {
      await client.end();
    }
  }
  if (e.kind === 'mysql') {
    const conn = await mysql.createConnection({ host: e.host, port: e.port, user: e.user, password: e.password, database: e.database });
    try {
      const [rows] = await conn.query('SELECT rev FROM kv WHERE name = ? ORDER BY rev', [k]);
      return (rows as { rev: number | string }[]).map((r) => Number(r.rev));
    } finally {
      await conn.end();
    }
  }
  throw new Error(`storedRevisions: ${e.kind} endpoints are not SQL databases`);
}

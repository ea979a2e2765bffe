/**
 * Snapshot ranges on SQLite read as packed rows instead of one row per key. better-sqlite3 turns every BLOB
 * cell into its own Buffer (~1.5 us each, whatever its size) and every other cell into a separate V8 value:
 * measured on a page of 100 keys, that was three quarters of the read and SQLite's own work the rest. A
 * packed row carries up to CHUNK_ROWS keys: their keys and values concatenated in one BLOB and the other
 * columns as one JSON array; rows come out as views of that BLOB.
 */
import type { KeyRow } from '../backend.js';

/**
 * Keys per packed row. Bounds the packed BLOB below SQLite's 1e9-byte string limit (512 x (2 KiB key +
 * 1.5 MiB value, etcd's request limit) = 806 MB) and the transient copy it makes; above kube's 500-key pages.
 */
export const CHUNK_ROWS = 512;

/**
 * Wraps a snapshot range statement (statements.ts, with LIMIT) so its rows come back as one row: `bytes`,
 * each key followed by its value, and `meta`, per row [key length, value length, rev, sub, create_rev,
 * prev_rev, version, lease (decimal text), deleted]. Both aggregates take the rows in the same order, so
 * they agree; `||` and group_concat copy BLOB bytes unchanged in a UTF-8 database.
 */
export function packedRangeSql(rangeSql: string, keysOnly: boolean): string {
  const bytes = keysOnly ? 'p.name' : 'p.name || p.value';
  const valueLength = keysOnly ? '0' : 'octet_length(p.value)';
  return (
    `SELECT CAST(group_concat(${bytes}, '') AS BLOB) AS bytes, json_group_array(json_array(octet_length(p.name), ${valueLength}, ` +
    `p.rev, p.sub, p.create_rev, p.prev_rev, p.version, p.lease, p.deleted)) AS meta FROM (${rangeSql}) AS p`
  );
}

type Meta = [number, number, number, number, number, number, number, string, number];

const EMPTY = Buffer.alloc(0);

/** Appends the rows of one packed row to `out` in key order; returns how many it held. */
export function unpackRows(packed: { bytes: Buffer | null; meta: string }, out: KeyRow[]): number {
  const meta = JSON.parse(packed.meta) as Meta[];
  const bytes = packed.bytes ?? EMPTY;
  const first = out.length;
  let at = 0;
  let sorted = true;
  for (const m of meta) {
    const key = bytes.subarray(at, (at += m[0]));
    const value = m[1] > 0 ? bytes.subarray(at, (at += m[1])) : EMPTY;
    if (out.length > first && Buffer.compare(out[out.length - 1]!.key, key) >= 0) sorted = false;
    out.push({ key, value, modRevision: m[2], sub: m[3], createRevision: m[4], prevRevision: m[5], version: m[6], lease: m[7], deleted: m[8] !== 0 });
  }
  if (at !== bytes.length) throw new Error(`packed range: ${bytes.length} bytes for rows of ${at} bytes`);
  // SQLite feeds an aggregate the subquery's rows in its ORDER BY in practice, but does not promise it.
  if (!sorted) {
    const chunk = out.splice(first).sort((a, b) => Buffer.compare(a.key, b.key));
    out.push(...chunk);
  }
  return meta.length;
}

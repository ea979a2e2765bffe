/**
 * Snapshot ranges on SQLite read as packed rows instead of one row per key. better-sqlite3 turns every BLOB
 * cell into its own Buffer (~1.5 us each, whatever its size) and every other cell into a separate V8 value:
 * measured on a page of 100 keys, that was three quarters of the read and SQLite's own work the rest. A
 * packed row carries up to CHUNK_ROWS keys: their keys and values concatenated in one BLOB and the other
 * columns as one JSON array; rows come out as views of that BLOB.
 */
import type { KeyRow, RangeQuery } from '../backend.js';
import { keyAfter } from '../key-range.js';
import type { StatementCache } from './sqlite-connection.js';
import { rangeShape, shapeId, type RangeShape, type Statements } from './statements.js';

/**
 * Keys per packed row. Bounds the packed BLOB below SQLite's 1e9-byte string limit (512 x (2 KiB key +
 * 1.5 MiB value, etcd's request limit) = 806 MB) and the transient copy it makes; above kube's 500-key pages.
 */
export const CHUNK_ROWS = 512;

/** One packed row: up to CHUNK_ROWS rows of a range. */
export interface PackedRow {
  /** Each key followed by its value; null when the chunk is empty. */
  bytes: Buffer | null;
  /** Per row [key length, value length, rev, sub, create_rev, prev_rev, version, lease (decimal text), deleted]. */
  meta: string;
  /** Rows in the chunk. */
  n: number;
  /** Its greatest key (where the next chunk starts after); null when empty. */
  last: Buffer | null;
}

/**
 * Wraps a snapshot range statement (statements.ts, with LIMIT) so its rows come back as one PackedRow.
 * `bytes` and `meta` take the rows in the same order, so they agree; `||` and group_concat copy BLOB bytes
 * unchanged in a UTF-8 database; max() of BLOBs compares bytewise, as keys are ordered.
 */
export function packedRangeSql(rangeSql: string, keysOnly: boolean): string {
  const bytes = keysOnly ? 'p.name' : 'p.name || p.value';
  const valueLength = keysOnly ? '0' : 'octet_length(p.value)';
  return (
    `SELECT CAST(group_concat(${bytes}, '') AS BLOB) AS bytes, json_group_array(json_array(octet_length(p.name), ${valueLength}, ` +
    `p.rev, p.sub, p.create_rev, p.prev_rev, p.version, p.lease, p.deleted)) AS meta, COUNT(*) AS n, max(p.name) AS last ` +
    `FROM (${rangeSql}) AS p`
  );
}

/** Reads bounded snapshot ranges as packed rows, on whichever connection it is given. */
export class PackedRanges {
  private readonly sqls = new Map<number, string>();

  constructor(private readonly st: Statements) {}

  /**
   * The packed chunks of range `q` (q.end defined), CHUNK_ROWS keys at a time. A range of more than one
   * chunk is read in one transaction unless the connection is in one already: one snapshot, whatever
   * commits meanwhile.
   */
  read(c: StatementCache, q: RangeQuery): PackedRow[] {
    if ((q.limit === 0 || q.limit > CHUNK_ROWS) && !c.db.inTransaction) return c.db.transaction(() => this.chunks(c, q)).deferred();
    return this.chunks(c, q);
  }

  private chunks(c: StatementCache, q: RangeQuery): PackedRow[] {
    const shape = { ...rangeShape(q), limited: true };
    const statement = c.get(this.sql(shape));
    const chunks: PackedRow[] = [];
    let start = q.start;
    let rows = 0;
    for (;;) {
      const want = q.limit > 0 ? Math.min(CHUNK_ROWS, q.limit - rows) : CHUNK_ROWS;
      const chunk = statement.get(...this.st.rangeParams({ ...q, start, limit: want }, shape)) as PackedRow;
      chunks.push(chunk);
      rows += chunk.n;
      if (chunk.n < want || rows === q.limit) return chunks;
      start = keyAfter(chunk.last!);
    }
  }

  private sql(shape: RangeShape): string {
    const id = shapeId(shape);
    let s = this.sqls.get(id);
    if (!s) {
      s = packedRangeSql(this.st.range(shape), shape.keysOnly);
      this.sqls.set(id, s);
    }
    return s;
  }
}

type Meta = [number, number, number, number, number, number, number, string, number];

const EMPTY = Buffer.alloc(0);

/** The rows of packed chunks, in key order. */
export function unpackChunks(chunks: PackedRow[]): KeyRow[] {
  const rows: KeyRow[] = [];
  for (const chunk of chunks) unpackRows(chunk, rows);
  return rows;
}

/** Appends the rows of one packed row to `out` in key order; returns how many it held. */
export function unpackRows(packed: Pick<PackedRow, 'bytes' | 'meta'>, out: KeyRow[]): number {
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

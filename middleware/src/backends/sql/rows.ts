/**
 * Mapping between database rows of `kv` / `leases` and the backend interface's types, the same for every
 * dialect. Drivers hand back integers as numbers (SQLite), strings (pg int8, mysql2 bigNumberStrings) or
 * text casts (lease IDs), so everything goes through Number()/String() here and nowhere else.
 */
import { KeyTooLongError, type ChangeRow, type KeyRow, type LeaseRow } from '../backend.js';
import type { ScanRow } from './compaction.js';

/** A `kv` row as selected by statements.ts (`p_*` columns: the superseded row joined by `changes`). */
export type DbRow = Record<string, unknown>;

const EMPTY = Buffer.alloc(0);

function bytes(v: unknown): Buffer {
  if (v == null) return EMPTY;
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  // Only reached if a driver returned text for a binary column: a schema or driver setup bug.
  throw new TypeError(`expected bytes from the database, got ${typeof v}`);
}

export function toKeyRow(r: DbRow, prefix = ''): KeyRow {
  return {
    key: bytes(r[`${prefix}name`]),
    value: bytes(r[`${prefix}value`]),
    modRevision: Number(r[`${prefix}rev`]),
    sub: Number(r[`${prefix}sub`]),
    createRevision: Number(r[`${prefix}create_rev`]),
    prevRevision: Number(r[`${prefix}prev_rev`]),
    version: Number(r[`${prefix}version`]),
    lease: String(r[`${prefix}lease`]),
    deleted: Number(r[`${prefix}deleted`]) !== 0,
  };
}

export function toChangeRow(r: DbRow): ChangeRow {
  const row: ChangeRow = toKeyRow(r);
  // The superseded row shares the key; it is absent on create or once compaction removed it.
  if (r.p_rev != null) row.prev = { ...toKeyRow(r, 'p_'), key: row.key };
  return row;
}

/** A row of the compaction scan (`Statements.compactScan`). */
export function toScanRow(r: DbRow): ScanRow {
  return { rev: Number(r.rev), sub: Number(r.sub), name: bytes(r.name), prevRev: Number(r.prev_rev), deleted: Number(r.deleted) !== 0 };
}

export function toLeaseRow(r: DbRow): LeaseRow {
  return { id: String(r.id), ttl: Number(r.ttl), expiresAt: Number(r.expires_at) };
}

/**
 * Parameters of one `kv` row in the column order of `KV_COLUMNS` (statements.ts). `int64` converts the
 * decimal lease ID to what the driver binds exactly (BigInt for SQLite, the string itself elsewhere).
 */
export function rowParams(row: KeyRow, int64: (decimal: string) => unknown): unknown[] {
  return [
    row.modRevision,
    row.sub,
    row.key,
    row.deleted ? EMPTY : row.value,
    row.createRevision,
    row.prevRevision,
    row.version,
    int64(checkInt64(row.lease, 'lease')),
    row.deleted ? 1 : 0,
  ];
}

/** int64 IDs arrive as decimal strings; anything else is a caller bug that must not reach the database. */
export function checkInt64(decimal: string, what: string): string {
  if (!/^-?\d{1,19}$/.test(decimal)) throw new TypeError(`${what} "${decimal}" is not a decimal int64`);
  return decimal;
}

/** The key-length guard, shared by all dialects (the limit itself is per dialect, see dialect files). */
export function checkKeyLength(key: Buffer, maxKeyBytes: number, label: string): void {
  if (key.length > maxKeyBytes) throw new KeyTooLongError(key.length, maxKeyBytes, label);
}

/**
 * Longest key PostgreSQL and MySQL/MariaDB accept: the unique (name, rev) B-tree index holds the whole key,
 * and an index entry is limited (PostgreSQL: about 2700 bytes per entry; InnoDB: 3072 bytes per index key,
 * the VARBINARY column of schema version 1 is declared with this length). 2048 bytes is far above any
 * Kubernetes key (< 1 KiB). SQLite has no such limit (see `SQLITE_MAX_KEY_BYTES`).
 */
export const MAX_KEY_BYTES = 2048;

/**
 * SQLite stores long index entries on overflow pages, so it takes keys as long as etcd does: etcd has no key
 * limit of its own, only its 1.5 MiB request limit, which the server checks first.
 */
export const SQLITE_MAX_KEY_BYTES = 1.5 * 1024 * 1024;

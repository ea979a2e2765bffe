/**
 * What differs between the SQL databases, as data: column types, placeholders, upserts, limits. Everything
 * built from it (statements.ts, schema.ts) is shared, so a dialect file holds only these differences and
 * its driver code.
 */

export type DialectName = 'sqlite' | 'postgres' | 'mysql';

export interface SqlDialect {
  readonly name: DialectName;
  /** Product name for messages ("PostgreSQL"). */
  readonly label: string;
  readonly types: {
    bigint: string;
    int: string;
    smallint: string;
    /** Key bytes: must compare bytewise (never a text type with a collation). */
    key: string;
    /** Value bytes, up to etcd's 1.5 MiB request limit. */
    value: string;
    /** Meta and other short ASCII names. */
    name: string;
    /** Meta values (small). */
    blob: string;
  };
  /** Appended to CREATE TABLE (storage engine and row format). */
  readonly tableOptions: string;
  /** Longest key accepted by `insert` (index entry limits; see rows.ts). */
  readonly maxKeyBytes: number;
  /**
   * Appended inside the "newer row" NOT EXISTS probe to keep it a per-row index probe. PostgreSQL otherwise
   * turns it into an anti join and, for open-ended ranges and counts, a merge or hash join over the whole
   * index (seconds at 1M rows); ` OFFSET 0` stops that rewrite.
   */
  readonly probeFence: string;
  /**
   * The unique (name, rev) index also carries `deleted` (PostgreSQL `INCLUDE`), so a count is an index-only
   * walk (DISTINCT ON, newest row per key) instead of a row fetch and probe per version (10x at 100k keys).
   */
  readonly coveringKeyIndex: boolean;
  /**
   * Cluster the table by (name, rev) instead of (rev, sub): the primary key is (name, rev) and (rev, sub) a
   * unique secondary index (the same two constraints). For InnoDB, which stores rows in primary key order:
   * key ranges and counts then read neighbouring rows instead of one random row lookup per version
   * (measured at 1M keys: counts 4-6x, random-start pages 5x faster; revision scans ~1.7x slower).
   */
  readonly clusteredByKey: boolean;
  /** Rewrites the `?` placeholders the shared statements use (PostgreSQL numbers them). */
  placeholders(sql: string): string;
  /** An expression giving a BIGINT column as exact decimal text (lease IDs exceed 2^53). */
  int64Text(column: string): string;
  /** Insert-or-replace of `columns` into `table` keyed by `key`. */
  upsert(table: string, key: string, columns: string[]): string;
}

/** `?, ?, ?` for n values. */
export function marks(n: number): string {
  return Array.from({ length: n }, () => '?').join(', ');
}

/** Standard `INSERT ... ON CONFLICT DO UPDATE` (SQLite and PostgreSQL). */
export function onConflictUpsert(table: string, key: string, columns: string[]): string {
  const updates = columns.filter((c) => c !== key).map((c) => `${c} = excluded.${c}`);
  return `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${marks(columns.length)}) ON CONFLICT (${key}) DO UPDATE SET ${updates.join(', ')}`;
}

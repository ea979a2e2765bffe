/**
 * The log store's tables and their ordered migrations. `meta.schema_version` records the newest migration
 * applied; a database written by a newer HariKube (higher version) is refused rather than misread.
 *
 * Indexes: the primary key (rev, sub) serves revision scans (changes, compaction, max revision); the unique
 * (name, rev) index serves key scans, per-key lookups and the "newer row" probes (on PostgreSQL it also
 * carries `deleted`, for index-only counts; on MySQL the two swap roles, see `SqlDialect.clusteredByKey`).
 * Nothing else: the plans of every statement at 1M rows on all three databases are checked by
 * test/backends/query-plans.test.ts (see statements.ts). `leasedKeys` alone scans the table; it runs once,
 * when the middleware starts.
 */
import { META } from '../meta.js';
import type { SqlDialect } from './dialect.js';

export const SCHEMA_VERSION_KEY = META.schemaVersion;

interface Migration {
  version: number;
  statements(d: SqlDialect): string[];
}

/** The meta table exists before any migration: it holds the schema version itself. */
export function metaTable(d: SqlDialect): string {
  return `CREATE TABLE IF NOT EXISTS meta (name ${d.types.name} NOT NULL PRIMARY KEY, value ${d.types.blob} NOT NULL)${d.tableOptions}`;
}

/** The two unique keys of `kv`: (rev, sub) identifies a row, (name, rev) orders a key's versions. */
function keys(d: SqlDialect): string {
  if (d.clusteredByKey) return 'PRIMARY KEY (name, rev), CONSTRAINT kv_rev_sub UNIQUE (rev, sub)';
  return `PRIMARY KEY (rev, sub), CONSTRAINT kv_name_rev UNIQUE (name, rev)${d.coveringKeyIndex ? ' INCLUDE (deleted)' : ''}`;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    statements: (d) => {
      const t = d.types;
      return [
        // `value` last: SQLite stores columns in declared order and reads past a large value only through its
        // overflow pages, so the small columns every filter needs come first.
        `CREATE TABLE IF NOT EXISTS kv (` +
          `rev ${t.bigint} NOT NULL, sub ${t.int} NOT NULL, name ${t.key} NOT NULL, ` +
          `create_rev ${t.bigint} NOT NULL, prev_rev ${t.bigint} NOT NULL, version ${t.bigint} NOT NULL, ` +
          `lease ${t.bigint} NOT NULL, deleted ${t.smallint} NOT NULL, value ${t.value} NOT NULL, ` +
          `${keys(d)})${d.tableOptions}`,
        `CREATE TABLE IF NOT EXISTS leases (id ${t.bigint} NOT NULL PRIMARY KEY, ttl ${t.bigint} NOT NULL, ` +
          `expires_at ${t.bigint} NOT NULL)${d.tableOptions}`,
      ];
    },
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

export class SchemaVersionError extends Error {
  constructor(description: string, found: number) {
    super(
      `${description}: the database has schema version ${found}, but this HariKube knows versions up to ` +
        `${SCHEMA_VERSION}; it was written by a newer HariKube. Run that version (or newer) against it, or point ` +
        `this one at another database.`,
    );
    this.name = 'SchemaVersionError';
  }
}

/** What `migrate` needs from a connection that is inside a transaction (or holds the schema lock). */
export interface SchemaExecutor {
  run(sql: string, params?: unknown[]): Promise<unknown>;
  /** The meta value of `name`, if any. */
  meta(name: string): Promise<Buffer | undefined>;
  setMeta(name: string, value: Buffer): Promise<void>;
}

function parseVersion(description: string, value: Buffer | undefined): number {
  if (value === undefined) return 0;
  const text = value.toString('utf8');
  if (!/^\d+$/.test(text)) throw new Error(`${description}: meta ${SCHEMA_VERSION_KEY} is "${text}", not a number: the meta table is damaged`);
  return Number(text);
}

/**
 * Creates or upgrades the schema. The caller runs it inside one transaction (SQLite, PostgreSQL) or under
 * a named lock (MySQL, whose DDL commits implicitly: every statement is idempotent for that reason).
 * Returns the version found before migrating (0 for a new database).
 */
export async function migrate(x: SchemaExecutor, d: SqlDialect, description: string): Promise<number> {
  await x.run(metaTable(d));
  const found = parseVersion(description, await x.meta(SCHEMA_VERSION_KEY));
  if (found > SCHEMA_VERSION) throw new SchemaVersionError(description, found);
  for (const m of MIGRATIONS) {
    if (m.version <= found) continue;
    for (const statement of m.statements(d)) await x.run(statement);
    await x.setMeta(SCHEMA_VERSION_KEY, Buffer.from(String(m.version)));
  }
  return found;
}

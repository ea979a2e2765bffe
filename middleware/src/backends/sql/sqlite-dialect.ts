/** SQLite's SQL dialect and which of its failures may pass (shared by the backend and its read worker). */
import { onConflictUpsert, type SqlDialect } from './dialect.js';
import { errorCode } from './errors.js';
import { SQLITE_MAX_KEY_BYTES } from './rows.js';

export const sqliteDialect: SqlDialect = {
  name: 'sqlite',
  label: 'SQLite',
  types: { bigint: 'BIGINT', int: 'INTEGER', smallint: 'SMALLINT', key: 'BLOB', value: 'BLOB', name: 'TEXT', blob: 'BLOB' },
  tableOptions: '',
  maxKeyBytes: SQLITE_MAX_KEY_BYTES,
  clusteredByKey: false,
  coveringKeyIndex: false,
  probeFence: '',
  placeholders: (sql) => sql,
  // Integers come back as JS numbers; the cast keeps int64 lease IDs exact without safeIntegers on every column.
  int64Text: (column) => `CAST(${column} AS TEXT)`,
  upsert: onConflictUpsert,
};

/** SQLite result codes that may pass: locks held by another process, I/O and disk-full, cannot open. */
const TRANSIENT = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|CANTOPEN|NOMEM|PROTOCOL|READONLY)/;
const TRANSIENT_FS = new Set(['ENOSPC', 'EACCES', 'EROFS', 'EIO', 'EPERM', 'ENOTDIR']);

export function transientSqliteError(err: unknown): boolean {
  const code = errorCode(err);
  return code !== undefined && (TRANSIENT.test(code) || TRANSIENT_FS.has(code));
}

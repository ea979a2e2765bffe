/** Where routed data physically is. */
import Database from 'better-sqlite3';

/** Distinct keys stored in a SQLite backend file, read over a separate read-only connection. */
export function keysIn(file: string): string[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT DISTINCT name FROM kv ORDER BY name').all() as { name: Buffer }[]).map((r) => r.name.toString());
  } finally {
    db.close();
  }
}

/** Opening a connection to the SQLite file, and the prepared statements of one connection. */
import Database from 'better-sqlite3';
import { walPragmas } from './sqlite-checkpoint.js';

const BUSY_TIMEOUT_MS = 5000;
/**
 * Page cache per connection (one writer, one reader each on the main thread and in the read worker), in
 * KiB. The OS page cache holds the rest of the file; a larger cache buys little for indexed reads and
 * costs resident memory at scale.
 */
const CACHE_KIB = 12 * 1024;

type Stmt = Database.Statement<unknown[], unknown>;

/** Prepared statements of one connection, prepared on first use. */
export class StatementCache {
  private readonly byText = new Map<string, Stmt>();
  constructor(readonly db: Database.Database) {}

  get(sql: string): Stmt {
    let s = this.byText.get(sql);
    if (!s) {
      s = this.db.prepare<unknown[], unknown>(sql);
      this.byText.set(sql, s);
    }
    return s;
  }
}

/**
 * A connection to `file`. The writer puts the database in WAL mode (readers never block it nor it them)
 * with synchronous=FULL (an acknowledged write survives power loss) and bounds the WAL (sqlite-checkpoint.ts);
 * readers are query-only.
 */
export function connectSqlite(file: string, role: 'writer' | 'reader', description: string): Database.Database {
  const db = new Database(file, { timeout: BUSY_TIMEOUT_MS });
  try {
    if (role === 'writer') {
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (String(mode).toLowerCase() !== 'wal') throw new Error(`${description}: SQLite refused WAL mode (got "${mode}") for ${file}: use a local file system`);
      db.pragma('synchronous = FULL');
      walPragmas(db);
    }
    db.pragma(`cache_size = -${CACHE_KIB}`);
    if (role === 'reader') db.pragma('query_only = ON');
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

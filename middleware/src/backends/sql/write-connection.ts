/**
 * The connections of a database-server backend as the write path sees them: something that runs
 * statements, and the write transaction's dedicated connection with its transaction control. Apart from
 * server-store.ts so that the write transaction (server-write-txn.ts) and the drivers need not import the
 * store that uses them.
 */
import type { DbRow } from './rows.js';

/** Something that runs statements: the pool, or one connection. */
export interface SqlRunner {
  query(sql: string, params: unknown[]): Promise<DbRow[]>;
  /** Runs a statement and returns the number of rows it changed. */
  execute(sql: string, params: unknown[]): Promise<number>;
}

/** The connection of the write transaction. */
export interface WriteConnection extends SqlRunner {
  begin(): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
  /** False once the driver saw it break, or it outlived the pool's maxLifeTime: it is replaced. */
  readonly usable: boolean;
  /** Closes it without waiting for the server (it may be gone). */
  destroy(): void;
}

/** What a write connection watches on the driver's own connection object. */
export interface ConnectionEvents {
  on(event: 'error' | 'end', listener: (err?: unknown) => void): unknown;
}

/** The driver's side of a dedicated connection: how it runs plain SQL, starts a transaction and closes. */
export interface ConnectionControl {
  /** The statement that starts a transaction. */
  begin: string;
  run(sql: string): Promise<unknown>;
  /** Closes without waiting for the server (it may be gone). */
  close(): void;
}


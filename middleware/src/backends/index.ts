/**
 * Backend construction from an endpoint string (README, "Other databases" and "Routing keys to several databases"). The caller calls `open()`.
 */
import { parseEndpoint, redactEndpoint } from '../topology/endpoint.js';
import type { BackendTLS, ConnectionPool } from '../topology/schema.js';
import type { Backend } from './backend.js';
import { HttpBackend } from './http-backend.js';
import { MysqlDriver } from './sql/mysql.js';
import { PostgresDriver } from './sql/postgres.js';
import { ServerLogStore } from './sql/server-store.js';
import { SqliteBackend } from './sql/sqlite.js';

export type { Backend } from './backend.js';
export { BackendUnavailableError } from './backend.js';

export interface BackendOptions {
  /** TLS towards the database server (PostgreSQL, MySQL). */
  tls?: BackendTLS;
  /** Connection pool of a database server (PostgreSQL, MySQL). */
  pool?: ConnectionPool;
  /**
   * Longest one statement on a database server may take before it fails as unavailable and its connection
   * is dropped (default 30 s; 0: no limit). SQLite waits on locks for 5 s and has no network to hang on.
   */
  queryTimeoutMs?: number;
  /** PostgreSQL, MySQL: fail instead of creating a missing database (a check such as `migrate verify` never creates what it checks). */
  mustExist?: boolean;
  /** This middleware's cluster ID, which a child middleware backend is claimed with and answers to. */
  parentClusterId?: () => Promise<string>;
}

export const DEFAULT_QUERY_TIMEOUT_MS = 30_000;

export function openBackend(endpoint: string, options: BackendOptions = {}): Backend {
  const parsed = parseEndpoint(endpoint);
  const description = redactEndpoint(endpoint);
  switch (parsed.kind) {
    case 'sqlite':
      return new SqliteBackend(parsed, description);
    case 'postgres':
      return new ServerLogStore(new PostgresDriver(parsed, description, { ...options, queryTimeoutMs: options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS }));
    case 'mysql':
      return new ServerLogStore(new MysqlDriver(parsed, description, { ...options, queryTimeoutMs: options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS }));
    case 'etcd':
      // an etcd or a child middleware: told apart at open (http-backend.ts)
      return new HttpBackend(parsed, description, { tls: options.tls, queryTimeoutMs: options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS, parentClusterId: options.parentClusterId });
  }
}

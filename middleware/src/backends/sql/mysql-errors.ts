/** Which MySQL/MariaDB failures may pass (BackendUnavailableError) and which mean the connection broke. */
import { errorCode, isNetworkError, messageOf } from './errors.js';

const TRANSIENT_CODES = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_SERVER_SHUTDOWN',
  'ER_NORMAL_SHUTDOWN',
  'ER_SHUTDOWN_COMPLETE',
  'ER_FORCING_CLOSE',
  'ER_CON_COUNT_ERROR',
  'ER_TOO_MANY_USER_CONNECTIONS',
  'ER_LOCK_WAIT_TIMEOUT',
  'ER_LOCK_DEADLOCK',
  'ER_DISK_FULL',
  'ER_RECORD_FILE_FULL',
  'ER_OUT_OF_RESOURCES',
  'ER_OUTOFMEMORY',
  'ER_NET_READ_ERROR',
  'ER_NET_READ_INTERRUPTED',
  'ER_NET_ERROR_ON_WRITE',
  'ER_NET_WRITE_INTERRUPTED',
  'ER_QUERY_INTERRUPTED',
  'ER_CLIENT_INTERACTION_TIMEOUT',
  'ER_READ_ONLY_MODE',
]);
/** MariaDB's "Connection was killed" has no name in mysql2's table. */
const ER_CONNECTION_KILLED = 1927;
/** Connect-time failures that are configuration, not availability. */
const CONFIG_CODES = new Set(['ER_ACCESS_DENIED_ERROR', 'ER_DBACCESS_DENIED_ERROR', 'ER_BAD_DB_ERROR', 'ER_NOT_SUPPORTED_AUTH_MODE']);
const CLOSED_MESSAGE = /closed state/;

interface MysqlError {
  errno?: number;
  fatal?: boolean;
}

export function mysqlTransient(err: unknown): boolean {
  const code = errorCode(err);
  const e = err as MysqlError | null;
  if (code !== undefined && CONFIG_CODES.has(code)) return false;
  return (
    isNetworkError(err) ||
    (code !== undefined && TRANSIENT_CODES.has(code)) ||
    e?.errno === ER_CONNECTION_KILLED ||
    // mysql2 marks every error that ends the connection as fatal.
    e?.fatal === true ||
    CLOSED_MESSAGE.test(messageOf(err))
  );
}

/** The connection used is gone (killed, reset), so the same read on another connection may succeed. */
export function mysqlConnectionLost(err: unknown): boolean {
  const code = errorCode(err);
  // The server is down or going down: another connection will not do better right now.
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'ER_SERVER_SHUTDOWN') return false;
  if (code !== undefined && CONFIG_CODES.has(code)) return false;
  const e = err as MysqlError | null;
  return (
    code === 'PROTOCOL_CONNECTION_LOST' ||
    code === 'ECONNRESET' ||
    code === 'EPIPE' ||
    e?.errno === ER_CONNECTION_KILLED ||
    e?.fatal === true ||
    CLOSED_MESSAGE.test(messageOf(err))
  );
}

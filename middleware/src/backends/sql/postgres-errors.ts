/** Which PostgreSQL failures may pass (BackendUnavailableError) and which mean the connection broke. */
import { errorCode, isNetworkError, messageOf } from './errors.js';

/** SQLSTATE classes that may pass: connection (08), resources (53), shutdown (57P0x), cancel (57014), system I/O (58), serialization/deadlock. */
const TRANSIENT_STATE = /^(08|53|57P0|57014|58|40001|40P01)/;
/** The connection itself is gone (terminated by the server or the network). */
const LOST_STATE = /^(08|57P0)/;
/** pg's own messages for a broken or timed-out connection (these errors carry no code). */
const LOST_MESSAGE = /Connection terminated|not queryable|timeout expired|timeout exceeded when trying to connect|Query read timeout/;

export function postgresTransient(err: unknown): boolean {
  const code = errorCode(err);
  return isNetworkError(err) || (code !== undefined && TRANSIENT_STATE.test(code)) || LOST_MESSAGE.test(messageOf(err));
}

/** The connection used is gone (terminated, reset), so the same read on another connection may succeed. */
export function postgresConnectionLost(err: unknown): boolean {
  const code = errorCode(err);
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND') return false; // the server is down: retrying now will not help
  return isNetworkError(err) || (code !== undefined && LOST_STATE.test(code)) || LOST_MESSAGE.test(messageOf(err));
}

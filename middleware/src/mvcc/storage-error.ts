/**
 * The etcd error a client gets when storage failed under its request: etcd errors pass through, a database
 * that is unreachable is `unavailable` (clients retry), anything else is logged with its stack and answered
 * as unavailable too, never as a crash.
 */
import { BackendUnavailableError } from '../backends/backend.js';
import type { Logger } from '../log.js';
import { EtcdError, errUnavailable } from './errors.js';

export function storageError(err: unknown, log: Logger): EtcdError {
  if (err instanceof EtcdError) return err;
  if (err instanceof BackendUnavailableError) return errUnavailable(err.message);
  log.error('storage error', { error: err, stack: (err as Error)?.stack });
  return errUnavailable(`unexpected storage error: ${(err as Error)?.message ?? String(err)}`);
}

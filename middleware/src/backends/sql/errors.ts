/**
 * Turning driver errors into the interface's two kinds: `BackendUnavailableError` for failures that may
 * pass (network, server restarting, disk full, timeouts) and the original error for bugs and constraint
 * violations. Each dialect decides which of its codes are transient; the network codes are common.
 */
import { BackendUnavailableError } from '../backend.js';

/** Socket and resolver errors: the server is unreachable or the connection broke. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function isNetworkError(err: unknown): boolean {
  const code = errorCode(err);
  if (code && NETWORK_CODES.has(code)) return true;
  // AggregateError from happy-eyeballs connects (several addresses tried).
  if (err instanceof AggregateError) return err.errors.some(isNetworkError);
  return false;
}

export function messageOf(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return err.errors.map(messageOf).join('; ');
  if (err instanceof Error) return err.message || errorCode(err) || err.name;
  return String(err);
}

/** Wraps `err` as unavailable if `transient(err)`, otherwise returns it untouched (to be rethrown). */
export function classify(err: unknown, transient: (e: unknown) => boolean, context: string, hint: string): unknown {
  if (err instanceof BackendUnavailableError || !transient(err)) return err;
  return new BackendUnavailableError(`${context}: ${messageOf(err)}; ${hint}`, { cause: err });
}

/**
 * For failures of `open()`: unavailable as `classify` says, otherwise an ordinary error that still names the
 * backend (driver messages such as "role x does not exist" do not say which database they are about).
 */
export function openFailure(err: unknown, transient: (e: unknown) => boolean, description: string, what: string, hint: string): unknown {
  const classified = classify(err, transient, `${description}: ${what}`, hint);
  if (classified !== err || !(err instanceof Error) || err.message.includes(description)) return classified;
  return new Error(`${description}: ${what}: ${messageOf(err)}`, { cause: err });
}

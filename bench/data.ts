/** Keys, values and bulk loading shared by the workloads. */
import { randomBytes } from 'node:crypto';
import { prefixEnd } from '../test/support/bytes.js';
import type { Connection, ConnectionPool } from './client.js';
import type * as T from '../test/support/etcd-types.js';

/** ~256 B values, as the issue asks; random so neither side can profit from compressible data. */
export const VALUE_256 = randomBytes(256);

/** etcd's --max-txn-ops default, which the middleware enforces too. */
export const MAX_TXN_OPS = 128;

/** Zero-padded so keys sort in numeric order (lists compare pages by key). */
export function keyOf(prefix: string, i: number): Buffer {
  return Buffer.from(`${prefix}${String(i).padStart(8, '0')}`);
}

export function rangeOf(prefix: string): { key: Buffer; range_end: Buffer } {
  return { key: Buffer.from(prefix), range_end: prefixEnd(prefix) };
}

/** One Txn that puts every key (no compare), i.e. all at one revision. */
export function multiPut(keys: Buffer[], value: Buffer): T.TxnRequest {
  return { success: keys.map((key) => ({ request_put: { key, value } })) };
}

export interface LoadOptions {
  /** Txns in flight at once. */
  concurrency?: number;
  /** Puts per Txn (at most MAX_TXN_OPS). */
  perTxn?: number;
  /** Bound on the whole load; throws when exceeded. */
  timeoutMs?: number;
  /** Called after each Txn with the number of keys stored so far. */
  progress?: (stored: number) => void;
}

/** Stores `count` keys `keyOf(prefix, 0..count-1)` with `value`, through multi-put Txns spread over the pool. */
export async function loadKeys(pool: ConnectionPool, prefix: string, count: number, value: Buffer, opts: LoadOptions = {}): Promise<void> {
  const perTxn = Math.min(opts.perTxn ?? MAX_TXN_OPS, MAX_TXN_OPS);
  const concurrency = opts.concurrency ?? 4;
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let next = 0;
  let stored = 0;
  const worker = async (w: number) => {
    const conn: Connection = pool.of(w);
    while (next < count) {
      if (Date.now() > deadline) throw new Error(`loading ${count} keys under ${prefix}: timed out after ${stored}`);
      const from = next;
      next = Math.min(count, next + perTxn);
      const keys: Buffer[] = [];
      for (let i = from; i < next; i++) keys.push(keyOf(prefix, i));
      const res = await conn.txn(multiPut(keys, value));
      if (!res.succeeded) throw new Error(`multi-put Txn under ${prefix} did not succeed`);
      stored += keys.length;
      opts.progress?.(stored);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
}

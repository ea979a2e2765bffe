/**
 * The single keys a write request will read the newest version of (its put keys, compare keys and
 * single-key deletes), so a batch can ask a backend reached over the network for all of them in one round
 * trip (`WriteTxn.prefetch`) instead of one per key while the requests are applied.
 */
import type { DeleteRangeRequest, PutRequest, RequestOp, TxnRequest } from './api.js';

const EMPTY = Buffer.alloc(0);

function single(req: DeleteRangeRequest): Buffer[] {
  return !req.range_end || req.range_end.length === 0 ? [req.key] : [];
}

function opKeys(ops: RequestOp[] | undefined, out: Buffer[]): void {
  for (const op of ops ?? []) {
    if (op.request_put) out.push(op.request_put.key);
    else if (op.request_delete_range) out.push(...single(op.request_delete_range));
    else if (op.request_txn) txnKeys(op.request_txn, out);
  }
}

function txnKeys(req: TxnRequest, out: Buffer[]): void {
  for (const c of req.compare ?? []) if (!c.range_end || c.range_end.length === 0) out.push(c.key ?? EMPTY);
  opKeys(req.success, out);
  opKeys(req.failure, out);
}

export function putKeys(req: PutRequest): Buffer[] {
  return [req.key];
}

export function deleteKeys(req: DeleteRangeRequest): Buffer[] {
  return single(req);
}

export function txnTouchedKeys(req: TxnRequest): Buffer[] {
  const out: Buffer[] = [];
  txnKeys(req, out);
  return out;
}

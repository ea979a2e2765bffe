/** etcdserverpb.KV: Range, Put, DeleteRange, Txn, Compact, with etcd's request validation. */
import type * as grpc from '@grpc/grpc-js';
import { num, type RangeRequest, type RequestOp, type TxnRequest } from '../mvcc/api.js';
import { errDuplicateKey, errEmptyKey, errTooManyOps } from '../mvcc/errors.js';
import { inRange } from '../backends/key-range.js';
import { rangeEnd } from '../mvcc/key-range.js';
import type { Store } from '../mvcc/store.js';
import { checkRequestSize, unary } from './rpc.js';
import { encodeRangeResponse } from './wire.js';

/** etcd's --max-txn-ops default. */
export const MAX_TXN_OPS = 128;

function requireKey(key: Buffer | undefined): void {
  if (!key || key.length === 0) throw errEmptyKey();
}

interface Intervals {
  puts: Buffer[];
  dels: { start: Buffer; end: Buffer | undefined }[];
}

/** etcd's checkIntervals: a key written twice in one branch, or put and deleted, is ambiguous. */
function checkIntervals(ops: RequestOp[]): Intervals {
  const puts: Buffer[] = [];
  const dels: Intervals['dels'] = [];
  const addPut = (k: Buffer) => {
    if (puts.some((p) => p.equals(k))) throw errDuplicateKey();
    puts.push(k);
  };
  for (const op of ops) {
    if (op.request_put) addPut(op.request_put.key);
    else if (op.request_delete_range) dels.push({ start: op.request_delete_range.key, end: rangeEnd(op.request_delete_range.range_end) });
    else if (op.request_txn) {
      const s = checkIntervals(op.request_txn.success ?? []);
      const f = checkIntervals(op.request_txn.failure ?? []);
      const nested = [...s.puts, ...f.puts.filter((k) => !s.puts.some((p) => p.equals(k)))];
      for (const k of nested) addPut(k);
      dels.push(...s.dels, ...f.dels);
    }
  }
  for (const d of dels) for (const p of puts) if (inRange(p, d.start, d.end)) throw errDuplicateKey();
  return { puts, dels };
}

function checkOps(ops: RequestOp[]): void {
  if (ops.length > MAX_TXN_OPS) throw errTooManyOps();
  for (const op of ops) {
    const r = op.request_range ?? op.request_put ?? op.request_delete_range;
    if (r) requireKey(r.key);
    if (op.request_txn) checkTxn(op.request_txn);
  }
}

export function checkTxn(req: TxnRequest): void {
  for (const c of req.compare ?? []) requireKey(c.key);
  checkOps(req.success ?? []);
  checkOps(req.failure ?? []);
  checkIntervals(req.success ?? []);
  checkIntervals(req.failure ?? []);
}

export function kvService(store: Store): grpc.UntypedServiceImplementation {
  return {
    Range: unary('Range', async (req: RangeRequest) => {
      requireKey(req.key);
      return encodeRangeResponse(await store.range(req));
    }),
    Put: unary('Put', (req: { key: Buffer }) => {
      checkRequestSize(req);
      requireKey(req.key);
      return store.put(req);
    }),
    DeleteRange: unary('DeleteRange', (req: { key: Buffer }) => {
      checkRequestSize(req);
      requireKey(req.key);
      return store.deleteRange(req);
    }),
    Txn: unary('Txn', (req: TxnRequest) => {
      checkRequestSize(req);
      checkTxn(req);
      return store.txn(req);
    }),
    Compact: unary('Compact', async (req: { revision: string; physical: boolean }) => ({
      header: await store.compact(num(req.revision), { physical: req.physical }),
    })),
  };
}

/** The KV service definition; Range responses arrive pre-encoded (`encodeRangeResponse`) and pass through. */
export function kvDefinition(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  return { ...def, Range: { ...def.Range!, responseSerialize: (b: Buffer) => b } } as grpc.ServiceDefinition;
}

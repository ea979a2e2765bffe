/**
 * The etcd v3 messages the store handles, as the proto loader presents them (snake_case fields, int64 as
 * decimal strings, enums as their proto names). Internal callers may omit fields; absent means the proto
 * default. Outgoing int64s may be JS numbers (revisions) or strings (lease and member IDs).
 */

export type Int64 = string | number;

export interface ResponseHeader {
  cluster_id: string;
  member_id: string;
  revision: number;
  raft_term: number;
}

export interface KeyValue {
  key: Buffer;
  create_revision: Int64;
  mod_revision: Int64;
  version: Int64;
  value: Buffer;
  lease: Int64;
}

export type SortOrder = 'None' | 'Ascend' | 'Descend';
export type SortTarget = 'Key' | 'Version' | 'Create' | 'Mod' | 'Value';

export interface RangeRequest {
  key: Buffer;
  range_end?: Buffer;
  limit?: Int64;
  revision?: Int64;
  sort_order?: SortOrder;
  sort_target?: SortTarget;
  serializable?: boolean;
  keys_only?: boolean;
  count_only?: boolean;
  min_mod_revision?: Int64;
  max_mod_revision?: Int64;
  min_create_revision?: Int64;
  max_create_revision?: Int64;
}

export interface RangeResponse {
  header: ResponseHeader;
  kvs: KeyValue[];
  more: boolean;
  count: number;
}

export interface PutRequest {
  key: Buffer;
  value?: Buffer;
  lease?: Int64;
  prev_kv?: boolean;
  ignore_value?: boolean;
  ignore_lease?: boolean;
}

export interface PutResponse {
  header: ResponseHeader;
  prev_kv?: KeyValue;
}

export interface DeleteRangeRequest {
  key: Buffer;
  range_end?: Buffer;
  prev_kv?: boolean;
}

export interface DeleteRangeResponse {
  header: ResponseHeader;
  deleted: number;
  prev_kvs: KeyValue[];
}

export type CompareResult = 'Equal' | 'Greater' | 'Less' | 'NotEqual';
export type CompareTarget = 'Version' | 'Create' | 'Mod' | 'Value' | 'Lease';

export interface Compare {
  result?: CompareResult;
  target?: CompareTarget;
  key: Buffer;
  range_end?: Buffer;
  version?: Int64;
  create_revision?: Int64;
  mod_revision?: Int64;
  value?: Buffer;
  lease?: Int64;
}

export interface RequestOp {
  request_range?: RangeRequest | null;
  request_put?: PutRequest | null;
  request_delete_range?: DeleteRangeRequest | null;
  request_txn?: TxnRequest | null;
}

export interface ResponseOp {
  response_range?: RangeResponse;
  response_put?: PutResponse;
  response_delete_range?: DeleteRangeResponse;
  response_txn?: TxnResponse;
}

export interface TxnRequest {
  compare?: Compare[];
  success?: RequestOp[];
  failure?: RequestOp[];
}

export interface TxnResponse {
  header: ResponseHeader;
  succeeded: boolean;
  responses: ResponseOp[];
}

/** Number value of an int64 field (revisions, versions, limits: all far below 2^53). */
export function num(v: Int64 | undefined | null): number {
  return v === undefined || v === null || v === '' ? 0 : Number(v);
}

/** Canonical decimal string of an int64 ID field (lease IDs: may exceed 2^53). */
export function id(v: Int64 | undefined | null): string {
  return v === undefined || v === null || v === '' ? '0' : BigInt(v).toString();
}

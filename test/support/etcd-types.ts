/**
 * The etcd v3 messages as the raw test client sees them (proto-loader with keepCase, longs as String, enums
 * as String, defaults, oneofs). int64/uint64 fields are decimal strings both ways so values above 2^53 survive;
 * bytes are Buffers (a string in a bytes field would be read as base64 by protobufjs, so requests take Buffers).
 */

/** An int64/uint64 as the client decodes it. */
export type Int64 = string;
/** An int64 in a request: decimal string (any size) or a safe integer. */
export type Int64In = string | number;

export interface ResponseHeader {
  cluster_id: Int64;
  member_id: Int64;
  revision: Int64;
  raft_term: Int64;
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
  limit?: Int64In;
  revision?: Int64In;
  sort_order?: SortOrder;
  sort_target?: SortTarget;
  serializable?: boolean;
  keys_only?: boolean;
  count_only?: boolean;
  min_mod_revision?: Int64In;
  max_mod_revision?: Int64In;
  min_create_revision?: Int64In;
  max_create_revision?: Int64In;
}

export interface RangeResponse {
  header: ResponseHeader;
  kvs: KeyValue[];
  more: boolean;
  count: Int64;
}

export interface PutRequest {
  key: Buffer;
  value?: Buffer;
  lease?: Int64In;
  prev_kv?: boolean;
  ignore_value?: boolean;
  ignore_lease?: boolean;
}

export interface PutResponse {
  header: ResponseHeader;
  prev_kv: KeyValue | null;
}

export interface DeleteRangeRequest {
  key: Buffer;
  range_end?: Buffer;
  prev_kv?: boolean;
}

export interface DeleteRangeResponse {
  header: ResponseHeader;
  deleted: Int64;
  prev_kvs: KeyValue[];
}

export type RequestOp =
  | { request_range: RangeRequest }
  | { request_put: PutRequest }
  | { request_delete_range: DeleteRangeRequest }
  | { request_txn: TxnRequest };

/** Exactly one of the response_* fields is set; `response` names it. */
export interface ResponseOp {
  response: 'response_range' | 'response_put' | 'response_delete_range' | 'response_txn';
  response_range?: RangeResponse;
  response_put?: PutResponse;
  response_delete_range?: DeleteRangeResponse;
  response_txn?: TxnResponse;
}

export type CompareResult = 'Equal' | 'Greater' | 'Less' | 'NotEqual';
export type CompareTarget = 'Version' | 'Create' | 'Mod' | 'Value' | 'Lease';

export interface Compare {
  result: CompareResult;
  target: CompareTarget;
  key: Buffer;
  range_end?: Buffer;
  version?: Int64In;
  create_revision?: Int64In;
  mod_revision?: Int64In;
  value?: Buffer;
  lease?: Int64In;
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

export interface CompactionResponse {
  header: ResponseHeader;
}

/** Names as spelled in the etcd3 package's kv.proto (etcd's own proto says PUT/DELETE; the wire is the same). */
export type EventType = 'Put' | 'Delete';

export interface Event {
  type: EventType;
  kv: KeyValue;
  prev_kv: KeyValue | null;
}

export type WatchFilter = 'Noput' | 'Nodelete';

export interface WatchCreateRequest {
  key: Buffer;
  range_end?: Buffer;
  start_revision?: Int64In;
  progress_notify?: boolean;
  filters?: WatchFilter[];
  prev_kv?: boolean;
  watch_id?: Int64In;
  fragment?: boolean;
}

export type WatchRequest =
  | { create_request: WatchCreateRequest }
  | { cancel_request: { watch_id: Int64In } }
  | { progress_request: Record<string, never> };

export interface WatchResponse {
  header: ResponseHeader;
  watch_id: Int64;
  created: boolean;
  canceled: boolean;
  compact_revision: Int64;
  cancel_reason: string;
  fragment: boolean;
  events: Event[];
}

export interface LeaseGrantResponse {
  header: ResponseHeader;
  ID: Int64;
  TTL: Int64;
  error: string;
}

export interface LeaseKeepAliveResponse {
  header: ResponseHeader;
  ID: Int64;
  TTL: Int64;
}

export interface LeaseTimeToLiveResponse {
  header: ResponseHeader;
  ID: Int64;
  TTL: Int64;
  grantedTTL: Int64;
  keys: Buffer[];
}

export interface LeaseLeasesResponse {
  header: ResponseHeader;
  leases: { ID: Int64 }[];
}

export interface StatusResponse {
  header: ResponseHeader;
  version: string;
  dbSize: Int64;
  leader: Int64;
  raftIndex: Int64;
  raftTerm: Int64;
  raftAppliedIndex: Int64;
  errors: string[];
  dbSizeInUse: Int64;
  isLearner: boolean;
}

export interface AlarmResponse {
  header: ResponseHeader;
  alarms: { memberID: Int64; alarm: string }[];
}

export interface HashKVResponse {
  header: ResponseHeader;
  hash: number;
  compact_revision: Int64;
}

export interface Member {
  ID: Int64;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

export interface MemberListResponse {
  header: ResponseHeader;
  members: Member[];
}

export type HealthStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

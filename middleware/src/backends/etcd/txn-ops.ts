/** The etcd transaction operations the etcd backend writes with (rpc.proto RequestOp), and etcd's per-transaction limit. */

/** Operations per etcd transaction: etcd's --max-txn-ops default (128). Larger writes are split. */
export const MAX_TXN_OPS = 128;

/**
 * Bytes of keys and values a commit puts in one etcd transaction when it groups several global revisions:
 * below etcd's --max-request-bytes default (1.5 MiB), with room for the rest of the request. One revision
 * larger than that goes alone, as before grouping.
 */
export const MAX_TXN_BYTES = 1024 * 1024;

export type Op = { request_put: { key: Buffer; value: Buffer } } | { request_delete_range: { key: Buffer; range_end?: Buffer } };

export const put = (key: Buffer, value: Buffer): Op => ({ request_put: { key, value } });
export const del = (key: Buffer, range_end?: Buffer): Op => ({ request_delete_range: range_end ? { key, range_end } : { key } });

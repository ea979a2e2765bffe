/**
 * The four Txn shapes kube-apiserver's etcd3 storage sends (k8s.io/apiserver/pkg/storage/etcd3/store.go and
 * compact.go), built exactly as it builds them.
 */
import type { Int64In, TxnRequest } from './etcd-types.js';

/** Revisions as tests hold them (bigint) or as responses carry them (decimal string). */
type Revision = Int64In | bigint;

export const COMPACT_REV_KEY = Buffer.from('compact_rev_key');

/** Create: succeeds only if the key does not exist. */
export function kubeCreate(key: Buffer, value: Buffer, lease: Int64In = 0): TxnRequest {
  return {
    compare: [{ result: 'Equal', target: 'Mod', key, mod_revision: 0 }],
    success: [{ request_put: { key, value, lease } }],
    failure: [],
  };
}

/** Update (GuaranteedUpdate): put if unchanged since `modRevision`, else read the current object. */
export function kubeUpdate(key: Buffer, modRevision: Revision, value: Buffer, lease: Int64In = 0): TxnRequest {
  return {
    compare: [{ result: 'Equal', target: 'Mod', key, mod_revision: String(modRevision) }],
    success: [{ request_put: { key, value, lease } }],
    failure: [{ request_range: { key } }],
  };
}

/** Delete (conditionalDelete): delete if unchanged since `modRevision`, else read the current object. */
export function kubeDelete(key: Buffer, modRevision: Revision): TxnRequest {
  return {
    compare: [{ result: 'Equal', target: 'Mod', key, mod_revision: String(modRevision) }],
    success: [{ request_delete_range: { key } }],
    failure: [{ request_range: { key } }],
  };
}

/** Compaction marker: bump compact_rev_key if its version is still `version`, else read it. */
export function kubeCompactMarker(version: Revision, revision: Revision): TxnRequest {
  return {
    compare: [{ result: 'Equal', target: 'Version', key: COMPACT_REV_KEY, version: String(version) }],
    success: [{ request_put: { key: COMPACT_REV_KEY, value: Buffer.from(String(revision)) } }],
    failure: [{ request_range: { key: COMPACT_REV_KEY } }],
  };
}

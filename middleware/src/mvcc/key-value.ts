/** The etcd KeyValue clients see of a stored row (reads, prev_kv, watch events). */
import type { KeyRow } from '../backends/backend.js';
import type { KeyValue } from './api.js';

/** The etcd KeyValue of a stored row (tombstones carry only key and mod_revision, as etcd's DELETE events do). */
export function rowToKeyValue(row: KeyRow, keysOnly = false): KeyValue {
  if (row.deleted) {
    return { key: row.key, create_revision: 0, mod_revision: row.modRevision, version: 0, value: Buffer.alloc(0), lease: 0 };
  }
  return {
    key: row.key,
    create_revision: row.createRevision,
    mod_revision: row.modRevision,
    version: row.version,
    value: keysOnly ? Buffer.alloc(0) : row.value,
    lease: row.lease,
  };
}

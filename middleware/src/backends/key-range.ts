/**
 * Keys in the backend's range form (`RangeQuery`: `end` undefined = the single key `start`, an empty buffer
 * = to the end of the keyspace), for everything that reads backends page by page or filters their rows.
 * Here, under the backends, so a backend may use them without importing the mvcc layer above it; the
 * translation from etcd's (key, range_end) into this form is mvcc's (`mvcc/key-range.ts`).
 */

/** The smallest key after `key` in bytewise order: where a read that resumes after `key` starts. */
export function keyAfter(key: Buffer): Buffer {
  return Buffer.concat([key, Buffer.from([0])]);
}

/** True when `key` falls in [start, end) with `end` in backend form. */
export function inRange(key: Buffer, start: Buffer, end: Buffer | undefined): boolean {
  if (end === undefined) return key.equals(start);
  if (Buffer.compare(key, start) < 0) return false;
  return end.length === 0 || Buffer.compare(key, end) < 0;
}

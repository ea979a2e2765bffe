/**
 * etcd's key/range_end conventions, translated once into the backend's `RangeQuery` form:
 * empty range_end = the single key; range_end "\0" = every key >= key; key "\0" with range_end "\0" = all.
 */

/** The backend `end` for an etcd (key, range_end) pair: undefined = single key, empty buffer = to the end. */
export function rangeEnd(rangeEndBytes: Buffer | undefined): Buffer | undefined {
  if (!rangeEndBytes || rangeEndBytes.length === 0) return undefined;
  if (rangeEndBytes.length === 1 && rangeEndBytes[0] === 0) return Buffer.alloc(0);
  return rangeEndBytes;
}

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

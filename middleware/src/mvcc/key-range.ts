/**
 * etcd's key/range_end conventions, translated once into the backend's `RangeQuery` form:
 * empty range_end = the single key; range_end "\0" = every key >= key; key "\0" with range_end "\0" = all.
 * Helpers on keys already in backend form are in `backends/key-range.ts`.
 */

/** The backend `end` for an etcd (key, range_end) pair: undefined = single key, empty buffer = to the end. */
export function rangeEnd(rangeEndBytes: Buffer | undefined): Buffer | undefined {
  if (!rangeEndBytes || rangeEndBytes.length === 0) return undefined;
  if (rangeEndBytes.length === 1 && rangeEndBytes[0] === 0) return Buffer.alloc(0);
  return rangeEndBytes;
}

/** Keys and values are bytes on the wire; these keep test code readable without losing that. */

export const ZERO_BYTE = Buffer.from([0]);

/** UTF-8 bytes of `s` (never pass a string to a bytes field: protobufjs would read it as base64). */
export function b(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

/** The range_end that makes [prefix, end) cover every key starting with `prefix` (etcd's GetPrefixRangeEnd). */
export function prefixEnd(prefix: string | Buffer): Buffer {
  const end = Buffer.from(typeof prefix === 'string' ? b(prefix) : prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return ZERO_BYTE;
}

/** A range request body covering every key under `prefix`. */
export function underPrefix(prefix: string): { key: Buffer; range_end: Buffer } {
  return { key: b(prefix), range_end: prefixEnd(prefix) };
}

/** The header revision of a response, as a bigint (int64 arrives as a decimal string). */
export function rev(res: { header: { revision: string } }): bigint {
  return BigInt(res.header.revision);
}

/** UTF-8 text of a key or value. */
export function text(buf: Buffer): string {
  return buf.toString('utf8');
}

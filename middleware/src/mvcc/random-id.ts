import { randomBytes } from 'node:crypto';

/** A random positive int63 as a decimal string, like etcd's cluster, member and lease IDs; never 0. */
export function randomId(): string {
  return ((randomBytes(8).readBigUInt64BE() >> 1n) | 1n).toString();
}

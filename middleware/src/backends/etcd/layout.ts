/**
 * What the etcd backend stores in its etcd (README "What is stored in an etcd backend"):
 *
 * - every key routed to the etcd under its own name, its value in an envelope: one text line with the
 *   global revisions and the rest of the version (`harikube/v1 mod=M create=C prev=P version=V lease=L`),
 *   a newline, then the value as the client wrote it. etcd numbers its own revisions; the envelope is what
 *   the middleware reports, so `etcdctl get KEY` shows both;
 * - `harikube/revision/<global revision, 20 digits>`: one key per global revision written to this etcd, put
 *   in the same etcd transaction as that revision's keys, so its `mod_revision` is the etcd revision that
 *   holds the state at that global revision: the durable map between the two revision spaces
 *   (`etcdctl get --prefix harikube/revision/ -w json`). Compaction deletes the entries below it;
 * - `harikube/meta/<name>`: the backend's meta values (the owning middleware's cluster ID).
 */
import type { KeyRow } from '../backend.js';

export const INTERNAL_PREFIX = Buffer.from('harikube/');
/** First key after every internal key. */
export const INTERNAL_END = Buffer.from('harikube0');
const REVISION_PREFIX = 'harikube/revision/';
const META_PREFIX = 'harikube/meta/';
const MAGIC = 'harikube/v1 ';

export function isInternal(key: Buffer): boolean {
  return key.length >= INTERNAL_PREFIX.length && INTERNAL_PREFIX.equals(key.subarray(0, INTERNAL_PREFIX.length));
}

export function revisionKey(global: number): Buffer {
  return Buffer.from(REVISION_PREFIX + String(global).padStart(20, '0'));
}

export const REVISION_KEYS_START = Buffer.from(REVISION_PREFIX);
export const REVISION_KEYS_END = Buffer.from('harikube/revision0');

export function globalOfRevisionKey(key: Buffer): number {
  return Number(key.subarray(REVISION_PREFIX.length).toString());
}

export function metaKey(name: string): Buffer {
  return Buffer.from(META_PREFIX + name);
}

/** The stored value of a row (not for tombstones: a delete deletes the key in etcd). */
export function encodeValue(row: KeyRow): Buffer {
  const head = `${MAGIC}mod=${row.modRevision} create=${row.createRevision} prev=${row.prevRevision} version=${row.version} lease=${row.lease}\n`;
  return Buffer.concat([Buffer.from(head), row.value]);
}

/** The row a stored key-value holds; throws for a value the middleware did not write. */
export function decodeValue(key: Buffer, stored: Buffer, where: string, keysOnly = false): KeyRow {
  const nl = stored.indexOf(10);
  const head = nl < 0 ? '' : stored.subarray(0, nl).toString('latin1');
  const m = /^harikube\/v1 mod=(\d+) create=(\d+) prev=(\d+) version=(\d+) lease=(\d+)$/.exec(head);
  if (!m) {
    throw new Error(
      `${where}: key ${JSON.stringify(key.toString('latin1'))} holds a value HariKube did not write (no "${MAGIC.trim()}" envelope); the etcd of a rule must be empty when the rule is added`,
    );
  }
  return {
    key,
    value: keysOnly ? Buffer.alloc(0) : stored.subarray(nl + 1),
    modRevision: Number(m[1]),
    sub: 0,
    createRevision: Number(m[2]),
    prevRevision: Number(m[3]),
    version: Number(m[4]),
    lease: m[5]!,
    deleted: false,
  };
}

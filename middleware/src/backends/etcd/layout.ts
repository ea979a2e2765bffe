/**
 * What the etcd backend stores in its etcd (README "What is stored in an etcd backend"):
 *
 * - every key routed to the etcd under its own name, its value in an envelope: one text line with the
 *   global revisions and the rest of the version (`harikube/v1 mod=M create=C prev=P version=V lease=L
 *   sub=S`, `sub` the row's place among the rows of its global revision, absent in values written before
 *   it was kept), a newline, then the value as the client wrote it. etcd numbers its own revisions; the
 *   envelope is what the middleware reports, so `etcdctl get KEY` shows both;
 * - `harikube/revision/<global revision, 20 digits>`: one key per global revision written to this etcd, put
 *   in the same etcd transaction as that revision's keys, so its `mod_revision` is the etcd revision that
 *   holds them: the durable map between the two revision spaces (`etcdctl get --prefix harikube/revision/
 *   -w json`). A commit writes the global revisions of its batch in one etcd transaction (a group; more
 *   only when they exceed etcd's limits on one, or a key comes again), so several entries may share a
 *   `mod_revision` E: E holds the state at the group's top global revision, and the state at a lower one
 *   g is E's minus the group's changes above g (each row's envelope says its global revision, a delete's
 *   tombstone too; the version before is E-1's: group-undo.ts). One global revision larger than one etcd
 *   transaction spans several, consecutive: its entry's value is the first one's etcd revision (empty
 *   otherwise). Data written before grouping has one global revision per etcd revision, and reads the same.
 *   Compaction deletes the entries below it;
 * - `harikube/head`: the commit head, a token naming the last etcd transaction the middleware wrote (the
 *   top global revision of the group it wrote, `<G>.<i>` for the i-th of several transactions of one
 *   revision, or `revert <from>-<to> at <etcd revision>.<i>`). Every commit transaction compares it with the
 *   token before its own and sets it to its own, so transactions apply only in order, and a write still in
 *   flight from a failed attempt can never apply after the middleware moved on (it finds the head moved and
 *   changes nothing);
 * - `harikube/meta/<name>`: the backend's meta values (the owning middleware's cluster ID);
 * - `harikube/deleted/<hex key>`: the tombstone of the key's last delete (the envelope line ending in
 *   ` deleted`, no value), put in the etcd transaction of the delete: etcd keeps no tombstones, and reads
 *   across a migration need them (etcd-moves.ts);
 * - `harikube/copied/<hex key>/<global revision, 20 digits>`: a row of the key's history copied in by an
 *   online migration (an envelope, tombstones too): etcd cannot store rows at old revisions, so the history
 *   lives beside the key (etcd-moves.ts);
 * - `harikube/dropped/<hex key>`: the global revision up to which an online migration moved the key out
 *   (its rows up to there live elsewhere now, even in the etcd's older revisions).
 *
 * `<hex key>` is the key in lowercase hex, which sorts as the key does (and `/` sorts before every hex
 * digit), so a key range is one etcd range there too.
 */
import type { KeyRow } from '../backend.js';

export const INTERNAL_PREFIX = Buffer.from('harikube/');
/** First key after every internal key. */
export const INTERNAL_END = Buffer.from('harikube0');
const REVISION_PREFIX = 'harikube/revision/';
/** The commit head (see the file comment). */
export const HEAD_KEY = Buffer.from('harikube/head');
const META_PREFIX = 'harikube/meta/';
const DELETED_PREFIX = 'harikube/deleted/';
const COPIED_PREFIX = 'harikube/copied/';
const DROPPED_PREFIX = 'harikube/dropped/';
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

/** The stored value of a row: the envelope line, a newline, the value (a tombstone: ` deleted`, no value). */
export function encodeValue(row: KeyRow): Buffer {
  const head = `${MAGIC}mod=${row.modRevision} create=${row.createRevision} prev=${row.prevRevision} version=${row.version} lease=${row.lease} sub=${row.sub}${row.deleted ? ' deleted' : ''}\n`;
  return Buffer.concat([Buffer.from(head), row.deleted ? Buffer.alloc(0) : row.value]);
}

/** A decoded envelope; `subKnown` is false for values written before the envelope kept `sub` (it reads 0). */
export interface StoredRow {
  row: KeyRow;
  subKnown: boolean;
}

/** The row a stored key-value holds; throws for a value the middleware did not write. */
export function decodeStored(key: Buffer, stored: Buffer, where: string, keysOnly = false): StoredRow {
  const nl = stored.indexOf(10);
  const head = nl < 0 ? '' : stored.subarray(0, nl).toString('latin1');
  const m = /^harikube\/v1 mod=(\d+) create=(\d+) prev=(\d+) version=(\d+) lease=(\d+)(?: sub=(\d+))?( deleted)?$/.exec(head);
  if (!m) {
    throw new Error(
      `${where}: key ${JSON.stringify(key.toString('latin1'))} holds a value HariKube did not write (no "${MAGIC.trim()}" envelope); the etcd of a rule must be empty when the rule is added`,
    );
  }
  const deleted = m[7] !== undefined;
  return {
    row: {
      key,
      value: keysOnly || deleted ? Buffer.alloc(0) : stored.subarray(nl + 1),
      modRevision: Number(m[1]),
      sub: m[6] === undefined ? 0 : Number(m[6]),
      createRevision: Number(m[2]),
      prevRevision: Number(m[3]),
      version: Number(m[4]),
      lease: m[5]!,
      deleted,
    },
    subKnown: m[6] !== undefined,
  };
}

/** The row a stored key-value holds; throws for a value the middleware did not write. */
export function decodeValue(key: Buffer, stored: Buffer, where: string, keysOnly = false): KeyRow {
  return decodeStored(key, stored, where, keysOnly).row;
}

/** An etcd key range: `range_end` absent for one key. */
export type EtcdSpan = { key: Buffer; range_end?: Buffer };

/** The keys under `prefix` (then a hex key) of the keys in [start, end) (`end` undefined: `start` alone; empty: to the end). */
function hexSpan(prefix: string, start: Buffer, end: Buffer | undefined, perKey: boolean): EtcdSpan {
  const lo = Buffer.from(prefix + start.toString('hex') + (end === undefined && perKey ? '/' : ''));
  if (end === undefined) return perKey ? { key: lo, range_end: Buffer.from(prefix + start.toString('hex') + '0') } : { key: lo };
  return { key: lo, range_end: end.length === 0 ? prefixEnd(prefix) : Buffer.from(prefix + end.toString('hex')) };
}

function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  b[b.length - 1]!++;
  return b;
}

function keyOfHex(prefix: string, stored: Buffer, suffix: number): Buffer {
  return Buffer.from(stored.subarray(prefix.length, stored.length - suffix).toString('latin1'), 'hex');
}

export function deletedKey(key: Buffer): Buffer {
  return Buffer.from(DELETED_PREFIX + key.toString('hex'));
}

export function deletedSpan(start: Buffer, end: Buffer | undefined): EtcdSpan {
  return hexSpan(DELETED_PREFIX, start, end, false);
}

export function keyOfDeleted(stored: Buffer): Buffer {
  return keyOfHex(DELETED_PREFIX, stored, 0);
}

export function isDeletedKey(key: Buffer): boolean {
  return key.subarray(0, DELETED_PREFIX.length).equals(Buffer.from(DELETED_PREFIX));
}

export function copiedKey(key: Buffer, global: number): Buffer {
  return Buffer.from(`${COPIED_PREFIX}${key.toString('hex')}/${String(global).padStart(20, '0')}`);
}

export function copiedSpan(start: Buffer, end: Buffer | undefined): EtcdSpan {
  return hexSpan(COPIED_PREFIX, start, end, true);
}

/** The key and global revision a copied row's etcd key names. */
export function parseCopiedKey(stored: Buffer): { key: Buffer; global: number } {
  return { key: keyOfHex(COPIED_PREFIX, stored, 21), global: Number(stored.subarray(stored.length - 20).toString()) };
}

export function droppedKey(key: Buffer): Buffer {
  return Buffer.from(DROPPED_PREFIX + key.toString('hex'));
}

export function droppedSpan(start: Buffer, end: Buffer | undefined): EtcdSpan {
  return hexSpan(DROPPED_PREFIX, start, end, false);
}

export function keyOfDropped(stored: Buffer): Buffer {
  return keyOfHex(DROPPED_PREFIX, stored, 0);
}

/**
 * Reads inside a group (layout.ts): a commit writes the global revisions of a batch in one etcd
 * transaction, so the etcd holds the state at the group's top global revision only. The state at a lower
 * one, g, is the etcd state at the group's etcd revision E minus the group's changes above g. A key changes
 * at most once in a group (the commit starts a new etcd transaction rather than write a key twice in one),
 * so undoing a change means taking the key's version at E-1: the etcd's own event of the change, read with
 * prev_kv, carries it. A delete's global revision is the one of its tombstone, put beside it in the group.
 */
import type { KeyRow } from '../backend.js';
import { inRange } from '../key-range.js';
import type { EtcdEvent } from './client.js';
import { decodeStored, decodeValue, isDeletedKey, isInternal, keyOfDeleted } from './layout.js';

/** A key whose version (or tombstone) a group changed above the revision read, and what it was at that revision. */
export interface Undone {
  key: Buffer;
  /** Its version changed: `row` is the version at the revision read (undefined: absent then); `atTop` whether the etcd holds a version at E. */
  live?: { row: KeyRow | undefined; atTop: boolean };
  /** Its tombstone changed: the tombstone at the revision read (undefined: none then). */
  tombstone?: { row: KeyRow | undefined };
}

const id = (key: Buffer) => key.toString('latin1');

/**
 * The changes among `events` (all the events of one etcd revision, with prev_kv) made at global revisions
 * above `global`, undone: per key (latin1), its state at `global`.
 */
export function undoAbove(events: EtcdEvent[], global: number, where: string): Map<string, Undone> {
  const deletedAt = new Map<string, number>();
  for (const ev of events) {
    if (ev.type !== 'Put' || !isDeletedKey(ev.kv.key)) continue;
    const key = keyOfDeleted(ev.kv.key);
    deletedAt.set(id(key), decodeStored(key, ev.kv.value, where, true).row.modRevision);
  }
  const out = new Map<string, Undone>();
  const entry = (key: Buffer): Undone => {
    let e = out.get(id(key));
    if (!e) out.set(id(key), (e = { key }));
    return e;
  };
  for (const ev of events) {
    const prev = ev.prev_kv && ev.prev_kv.key?.length ? ev.prev_kv : undefined;
    if (ev.type === 'Put' && isDeletedKey(ev.kv.key)) {
      const key = keyOfDeleted(ev.kv.key);
      if (deletedAt.get(id(key))! > global) entry(key).tombstone = { row: prev && decodeValue(key, prev.value, where) };
      continue;
    }
    if (isInternal(ev.kv.key)) continue;
    // a delete with no tombstone beside it was written before grouping: a group of one, nothing above it
    const at = ev.type === 'Put' ? decodeStored(ev.kv.key, ev.kv.value, where, true).row.modRevision : deletedAt.get(id(ev.kv.key));
    if (at === undefined || at <= global) continue;
    entry(ev.kv.key).live = { row: prev && decodeValue(ev.kv.key, prev.value, where), atTop: ev.type === 'Put' };
  }
  return out;
}

/** The undone versions of keys in [start, end) (backend form: `end` undefined for `start` alone). */
export function undoneIn(undo: Map<string, Undone>, start: Buffer, end: Buffer | undefined): { key: Buffer; row: KeyRow | undefined; atTop: boolean }[] {
  const out: { key: Buffer; row: KeyRow | undefined; atTop: boolean }[] = [];
  for (const u of undo.values()) if (u.live && inRange(u.key, start, end)) out.push({ key: u.key, ...u.live });
  return out;
}

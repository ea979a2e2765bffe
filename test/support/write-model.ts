/**
 * What clients wrote, and the check that a server's history is exactly that. Writers record every attempt
 * (a put with a value no other put has, or a delete); an attempt the server acknowledged has its revision,
 * one cut off by a crash has none and may or may not have happened. `replay` takes a snapshot and the events
 * of a watch from just after it, and checks them against the attempts: this is how the migration tests tell
 * that copies are not changes, that a crash neither lost nor repeated a write, and that the final state is
 * the writers' state.
 */
import assert from 'node:assert/strict';
import type { Event, KeyValue } from './etcd-types.js';

export interface Attempt {
  key: string;
  op: 'put' | 'delete';
  /** A put's value (unique among all puts of a test). */
  value?: string;
  /** Acknowledged by the server. */
  acked: boolean;
  /** The revision of an acknowledged write (undefined for a delete that found nothing to delete). */
  revision?: number;
  /** ms since the epoch when the answer came. */
  ackedAt?: number;
}

/** One live key as a client sees it. */
export interface KeyState {
  value: string;
  mod: number;
  create: number;
  version: number;
  lease: string;
}

export type State = Map<string, KeyState>;

export function keyState(kv: KeyValue): KeyState {
  return { value: kv.value.toString('utf8'), mod: Number(kv.mod_revision), create: Number(kv.create_revision), version: Number(kv.version), lease: kv.lease };
}

/** The state a Range answered (keys in order). */
export function stateOf(kvs: KeyValue[]): State {
  return new Map(kvs.map((kv) => [kv.key.toString('utf8'), keyState(kv)]));
}

/** A state as sorted lines, for readable assertion diffs. */
export function lines(state: State): string[] {
  return [...state].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([k, s]) => `${k} = ${s.value} (mod ${s.mod}, create ${s.create}, version ${s.version}, lease ${s.lease})`);
}

/**
 * Checks `events` (a watch with prev_kv, from the revision after `initial` was read, over the keys the
 * attempts write) and returns the state they lead to:
 * - events come in revision order, each (revision, key) once: no event for a copy, none repeated by a crash;
 * - each event is a write a client attempted (a put by its unique value, a delete of that key), at most once;
 * - every acknowledged write is there at its revision; an unacknowledged one may be there;
 * - each event's kv and prev_kv are what replaying the events on `initial` gives (create revision, version,
 *   value, lease of the previous version).
 * `where` names the watch in failure messages. With `upTo`, only the history up to that revision is checked
 * (the writers went on meanwhile).
 */
export function replay(initial: State, events: Event[], attempts: Attempt[], where: string, upTo = Number.MAX_SAFE_INTEGER): State {
  events = events.filter((e) => Number(e.kv.mod_revision) <= upTo);
  const state: State = new Map([...initial].map(([k, s]) => [k, { ...s }]));
  const puts = new Map<string, Attempt>();
  for (const a of attempts) if (a.op === 'put') puts.set(a.value!, a);
  const ackedAt = new Map<string, Attempt>();
  for (const a of attempts) if (a.acked && a.revision !== undefined) ackedAt.set(`${a.revision} ${a.key}`, a);
  const unackedDeletes = new Map<string, number>();
  for (const a of attempts) if (a.op === 'delete' && !a.acked) unackedDeletes.set(a.key, (unackedDeletes.get(a.key) ?? 0) + 1);
  const seenPuts = new Set<string>();
  const seen = new Set<string>();
  let last = 0;
  for (const [i, e] of events.entries()) {
    const key = e.kv.key.toString('utf8');
    const rev = Number(e.kv.mod_revision);
    const id = `${rev} ${key}`;
    const at = `${where}: event #${i} (${e.type} ${key} at ${rev})`;
    assert.ok(rev >= last, `${at} comes after revision ${last}: events out of order`);
    assert.ok(!seen.has(id), `${at} is delivered twice`);
    seen.add(id);
    last = rev;
    const before = state.get(key);
    if (before) assert.deepEqual(e.prev_kv ? keyState(e.prev_kv) : undefined, before, `${at}: prev_kv is not the key's previous version`);
    else assert.equal(e.prev_kv, null, `${at}: prev_kv ${e.prev_kv?.value.toString()} for a key that did not exist`);
    const acked = ackedAt.get(id);
    if (e.type === 'Put') {
      const value = e.kv.value.toString('utf8');
      const attempt = puts.get(value);
      assert.ok(attempt && attempt.key === key, `${at}: value ${JSON.stringify(value)} was never written to this key: an event no client caused (a copy?)`);
      assert.ok(!seenPuts.has(value), `${at}: the put of ${value} is in the history twice`);
      seenPuts.add(value);
      if (attempt.acked) assert.equal(attempt.revision, rev, `${at}: the put of ${value} was acknowledged at revision ${attempt.revision}`);
      const next = { value, mod: rev, create: before ? before.create : rev, version: before ? before.version + 1 : 1, lease: e.kv.lease };
      assert.deepEqual(keyState(e.kv), next, `${at}: create revision or version do not follow the key's history`);
      state.set(key, next);
    } else {
      assert.ok(before, `${at}: a delete of a key that did not exist`);
      if (acked) assert.equal(acked.op, 'delete', `${at}: revision ${rev} was acknowledged as a put of ${key}`);
      else {
        const left = unackedDeletes.get(key) ?? 0;
        assert.ok(left > 0, `${at}: no client deleted ${key} then: an event no client caused`);
        unackedDeletes.set(key, left - 1);
      }
      state.delete(key);
    }
  }
  for (const a of attempts) {
    if (!a.acked || a.revision === undefined || a.revision > upTo) continue;
    assert.ok(seen.has(`${a.revision} ${a.key}`), `${where}: the acknowledged ${a.op} of ${a.key} at revision ${a.revision} is not in the history`);
  }
  return state;
}

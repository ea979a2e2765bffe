/**
 * Reads while keys move (docs/architecture.md, "Online migration"). A key being moved is, at any moment, in its
 * source, in its target, or (between the mover's copy and its drop) in both as identical rows; writes to it
 * go to the target only. So a read takes, per key, the newest row at the snapshot revision across every
 * backend that may hold it, tombstones included (a key deleted in the target must not show the live copy
 * still in the source), and drops tombstones last.
 *
 * Order matters: the mover commits its copy into the target before it drops the source's rows, so every
 * source is read before any target. A key the source no longer has was already in the target when the
 * target was read; reading the other way round could miss it between the two reads.
 */
import type { Backend, ChangeRow, KeyRow, RangeQuery } from '../backends/backend.js';
import { isMovable, type MovableBackend } from '../backends/movable.js';
import { keyAfter } from '../backends/key-range.js';
import { mergeByKey, mergeByRevision } from './merge.js';

/**
 * Sources first, then the backends that own the range (a backend may be in both: it is read twice). An
 * owner that cannot take part in a migration (no `moves`) holds only its own keys: its live rows are exact.
 */
export interface ReadPlan {
  sources: MovableBackend[];
  owners: Backend[];
}

function withTombstones(b: Backend, q: RangeQuery): Promise<KeyRow[]> {
  return isMovable(b) ? b.moves.rangeWithTombstones(q) : b.range(q);
}

async function inOrder<T>(plan: ReadPlan, read: (b: Backend) => Promise<T>): Promise<T[]> {
  const first = await Promise.all(plan.sources.map(read));
  const second = await Promise.all(plan.owners.map(read));
  return [...first, ...second];
}

/** Snapshot range across sources and owners: the newest row per key wins, deletions included. */
export async function rangeAcross(plan: ReadPlan, q: RangeQuery): Promise<KeyRow[]> {
  // one backend holds every key of the range: its own (faster) snapshot read is exact
  if (plan.sources.length === 0 && plan.owners.length === 1) return plan.owners[0]!.range(q);
  if (q.end === undefined) {
    const newest = mergeByKey(await inOrder(plan, (b) => withTombstones(b, q)), 1)[0];
    return newest && !newest.deleted ? [newest] : [];
  }
  const out: KeyRow[] = [];
  let start = q.start;
  for (;;) {
    const want = q.limit > 0 ? q.limit - out.length : 0;
    const lists = await inOrder(plan, (b) => withTombstones(b, { ...q, start, limit: want }));
    // a list cut at the limit says nothing about keys after its last one: stop the merge there and go on
    let horizon: Buffer | undefined;
    if (want > 0) {
      for (const l of lists) {
        if (l.length < want) continue;
        const last = l[l.length - 1]!.key;
        if (!horizon || Buffer.compare(last, horizon) < 0) horizon = last;
      }
    }
    for (const row of mergeByKey(lists, 0)) {
      if (horizon && Buffer.compare(row.key, horizon) > 0) break;
      if (row.deleted) continue;
      out.push(row);
      if (q.limit > 0 && out.length >= q.limit) return out;
    }
    if (!horizon) return out;
    start = keyAfter(horizon);
  }
}

/** Live keys in [start, end) at `revision`, each counted once wherever it is. */
export async function countAcross(plan: ReadPlan, start: Buffer, end: Buffer | undefined, revision: number): Promise<number> {
  if (plan.sources.length === 0 && plan.owners.length === 1) return plan.owners[0]!.count(start, end, revision);
  return (await rangeAcross(plan, { start, end, revision, limit: 0, keysOnly: true })).length;
}

/**
 * Watch catch-up across sources and owners: a copied row is in two backends with the same (revision, sub)
 * and counts once. A row written in the target whose predecessor is still in the source has no `prev`
 * from the target's own join; it is looked up across the plan.
 */
export async function changesAcross(plan: ReadPlan, from: number, to: number, limit: number): Promise<ChangeRow[]> {
  const rows = mergeByRevision(await inOrder(plan, (b) => b.changes(from, to, limit)), limit, true);
  for (const row of rows) {
    if (row.prev || row.prevRevision === 0) continue;
    const prev = mergeByKey(await inOrder(plan, (b) => withTombstones(b, { start: row.key, revision: row.prevRevision, limit: 1 })), 1)[0];
    // not found (compacted away) or not that version: the event goes without prev_kv, as etcd's would after compaction
    if (prev && prev.modRevision === row.prevRevision && !prev.deleted) row.prev = prev;
  }
  return rows;
}

/** Newest row of `key` (tombstones included) across `backends`, read in the order given. */
export async function latestAcross(backends: MovableBackend[], key: Buffer): Promise<KeyRow | undefined> {
  const lists: KeyRow[][] = [];
  for (const b of backends) lists.push(await b.moves.rangeWithTombstones({ start: key, revision: Number.MAX_SAFE_INTEGER, limit: 1 }));
  return mergeByKey(lists, 1)[0];
}

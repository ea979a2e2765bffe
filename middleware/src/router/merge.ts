/**
 * K-way merges of per-backend answers into the one answer a single etcd would give (docs/architecture.md,
 * "Ranges across backends" and "Watch hub"). Each input is already sorted and limited by its backend; the
 * number of inputs is the number of backends a request touches, so a linear pick of the smallest head is
 * cheaper than a heap.
 */
import type { ChangeRow, KeyRow } from '../backends/backend.js';

function mergeSorted<T>(lists: readonly T[][], compare: (a: T, b: T) => number, limit: number, same?: (a: T, b: T) => boolean): T[] {
  const nonEmpty = lists.filter((l) => l.length > 0);
  if (nonEmpty.length === 0) return [];
  if (nonEmpty.length === 1) return limit > 0 ? nonEmpty[0]!.slice(0, limit) : nonEmpty[0]!;
  const pos = new Array<number>(nonEmpty.length).fill(0);
  const out: T[] = [];
  for (;;) {
    if (limit > 0 && out.length >= limit) break;
    let best = -1;
    for (let i = 0; i < nonEmpty.length; i++) {
      if (pos[i]! >= nonEmpty[i]!.length) continue;
      if (best < 0 || compare(nonEmpty[i]![pos[i]!]!, nonEmpty[best]![pos[best]!]!) < 0) best = i;
    }
    if (best < 0) break;
    const next = nonEmpty[best]![pos[best]!++]!;
    const last = out[out.length - 1];
    if (same && last !== undefined && same(last, next)) continue;
    out.push(next);
  }
  return out;
}

/**
 * Snapshot rows of several backends in bytewise key order, at most `limit` (0 = all). A key is owned by
 * one backend, so duplicates mean a routing change left a stale copy behind; the newer version wins.
 */
export function mergeByKey(lists: readonly KeyRow[][], limit: number): KeyRow[] {
  return mergeSorted(
    lists,
    (a, b) => Buffer.compare(a.key, b.key) || b.modRevision - a.modRevision,
    limit,
    (a, b) => a.key.equals(b.key),
  );
}

/**
 * Log rows of several backends in (revision, sub) order, at most `limit` (0 = all): the global history.
 * `dedupe`: a row in two backends (a migration's copy) counts once.
 */
export function mergeByRevision(lists: readonly ChangeRow[][], limit: number, dedupe = false): ChangeRow[] {
  return mergeSorted(
    lists,
    (a, b) => a.modRevision - b.modRevision || a.sub - b.sub,
    limit,
    dedupe ? (a, b) => a.modRevision === b.modRevision && a.sub === b.sub : undefined,
  );
}

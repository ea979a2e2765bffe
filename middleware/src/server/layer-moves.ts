/**
 * The migration calls a child layer serves its parent (layer-protocol.ts, backends/movable.ts): the child's
 * rows carry the parent's revisions as they are, so copying a key's history in and dropping it out are plain
 * row operations on the child's own storage. That storage must hold every key itself: a child that routes
 * its keys across backends of its own (or is migrating them itself) would have to route the copies too,
 * which it does not; it refuses, saying so.
 */
import type { Backend, KeyRow, RangeQuery } from '../backends/backend.js';
import { isMovable, type KeyMoves } from '../backends/movable.js';
import { errChildLayer } from '../mvcc/errors.js';
import { mergeByKey } from '../router/merge.js';
import { RoutedBackend } from '../router/routed-backend.js';

/** Most bytes of rows in one History answer: whole keys, at least one (the parent asks for rows, not bytes). */
export const HISTORY_BYTES = 16 * 1024 * 1024;

/** The child's own storage's migration operations, or why it has none (see the header). */
export function ownMoves(b: Backend): KeyMoves | string {
  if (isMovable(b)) return b.moves;
  if (!(b instanceof RoutedBackend)) return `its storage (${b.description}) cannot copy rows at their revisions`;
  const t = b.table;
  if (t.backends.size > 0) {
    return `it routes keys to ${t.backends.size} backend(s) of its own (topology rules ${[...t.backends.keys()].map((n) => `"${n}"`).join(', ')}), and a migration step would have to span them; move keys into or out of a child that keeps them in its default backend`;
  }
  if (t.sources.size > 0) return 'it is migrating keys between its own backends; retry once its migration is done';
  if (!isMovable(t.defaultBackend)) return `its storage (${t.defaultBackend.description}) cannot copy rows at their revisions`;
  return t.defaultBackend.moves;
}

/**
 * `KeyMoves.rangeWithTombstones` of the child's storage. Served by a routed child too: the parent reads a
 * child this way whenever a migration runs, even one the child takes no part in (it may have opened the
 * child before the child's topology routed keys elsewhere), and the child's backends answer it merged, the
 * newest row of each key winning as in the child's own reads.
 */
export async function rangeWithTombstones(b: Backend, q: RangeQuery): Promise<KeyRow[]> {
  const moves = ownMoves(b);
  if (typeof moves !== 'string') return moves.rangeWithTombstones(q);
  if (!(b instanceof RoutedBackend)) throw errChildLayer(`this child layer cannot read deleted keys: ${moves}`);
  const lists = await Promise.all(b.table.all().map((x) => (isMovable(x) ? x.moves.rangeWithTombstones(q) : x.range(q))));
  return mergeByKey(lists, q.end === undefined ? 1 : q.limit);
}

/** `rows` (a History page, in key order) cut to whole keys within HISTORY_BYTES, the first key always kept. */
export function capHistory(rows: KeyRow[]): KeyRow[] {
  let bytes = 0;
  for (let i = 0; i < rows.length; i++) {
    bytes += rows[i]!.key.length + rows[i]!.value.length + 100;
    if (bytes <= HISTORY_BYTES) continue;
    // cut before the key this row belongs to, unless it is the first key
    let cut = i;
    while (cut > 0 && rows[cut - 1]!.key.equals(rows[i]!.key)) cut--;
    if (cut > 0) return rows.slice(0, cut);
    const firstKeyEnds = rows.findIndex((r) => !r.key.equals(rows[0]!.key));
    return firstKeyEnds < 0 ? rows : rows.slice(0, firstKeyEnds);
  }
  return rows;
}

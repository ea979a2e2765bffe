/**
 * Which rows of a migration copy a SQL target stores (movable-sql.ts). The mover copies a key's whole
 * history in one transaction, and copies it again when it restarted between its copy and its drop; the
 * target's compaction may have run in between.
 *
 * Invariant: a copy never stores a row older than a row of the same key that the target holds from the same
 * history. The earlier copy stored both (older rows first), so the older one is missing only because the
 * target's compaction removed it as superseded at or below the compact revision: no read at or above that
 * revision may see it. Stored again, it would also be a row that nothing names as its predecessor any more
 * once the newer one is compacted in turn, which no compaction then removes: after the key's delete is
 * compacted, the key would read that old version again (a lost delete).
 */
import type { KeyRow } from '../backend.js';

/** `rows` (whole key histories, in key then revision order) minus those held and those the rule above skips. */
export function rowsToCopy(rows: KeyRow[], held: (row: KeyRow) => boolean): KeyRow[] {
  const newestHeld = new Map<string, number>();
  for (const r of rows) {
    if (!held(r)) continue;
    const id = r.key.toString('latin1');
    newestHeld.set(id, Math.max(newestHeld.get(id) ?? 0, r.modRevision));
  }
  return rows.filter((r) => !held(r) && r.modRevision > (newestHeld.get(r.key.toString('latin1')) ?? 0));
}

/**
 * Compaction planning, shared by every dialect (they only differ in how they run the scan and the deletes).
 *
 * A compaction to R removes (a) every row superseded by a newer row at or below R and (b) tombstones below
 * R. Instead of probing every old row for a newer version, it walks the *superseding* rows Y (rev <= R) in
 * (rev, sub) order through the primary key: each Y names the row it superseded by (name, prev_rev), which is
 * deleted through the unique (name, rev) index, and a tombstone Y below R deletes itself. This relies on
 * the interface contract that `prevRevision` is the modRevision of the row a row supersedes.
 *
 * Rows superseded by a Y at or below an earlier completed compaction are gone already, so a walk starts at
 * the last revision this process finished compacting (0 after a restart: one full walk). The start row
 * itself is included because a tombstone exactly at that revision was kept then and is removable now.
 */

export interface ScanRow {
  rev: number;
  sub: number;
  name: Buffer;
  prevRev: number;
  deleted: boolean;
}

export interface Deletion {
  name: Buffer;
  rev: number;
}

export interface Cursor {
  rev: number;
  sub: number;
}

export interface BatchPlan {
  deletions: Deletion[];
  /** Position after the last scanned row whose deletions are in `deletions`. */
  cursor: Cursor;
  /** The walk reached its end: nothing at or below the revision is left to examine. */
  finished: boolean;
}

/**
 * Turns one scan page (at most `batchSize` rows, in (rev, sub) order, starting after the cursor) into at
 * most `batchSize` deletions. A row that would push the batch over the limit waits for the next batch; the
 * first row is always taken so every batch makes progress (a tombstone deleting itself and its predecessor
 * with `batchSize` 1 is the one case of 2 rows).
 */
export function planBatch(rows: ScanRow[], revision: number, batchSize: number, cursor: Cursor): BatchPlan {
  const deletions: Deletion[] = [];
  let next = cursor;
  let taken = 0;
  for (const r of rows) {
    const own: Deletion[] = [];
    if (r.prevRev !== 0) own.push({ name: r.name, rev: r.prevRev });
    if (r.deleted && r.rev < revision) own.push({ name: r.name, rev: r.rev });
    if (taken > 0 && deletions.length + own.length > batchSize) break;
    deletions.push(...own);
    next = { rev: r.rev, sub: r.sub };
    taken++;
  }
  return { deletions, cursor: next, finished: taken === rows.length && rows.length < batchSize };
}

/** Where this process is in compacting a backend: the walk for the current target and the last completed one. */
export class CompactionProgress {
  private completed = 0;
  private target = -1;
  private cursor: Cursor = { rev: 0, sub: -1 };

  /** Positions the walk for `revision`; false when a compaction at or above it has completed already. */
  begin(revision: number): boolean {
    if (revision <= this.completed) return false;
    if (revision !== this.target) {
      this.target = revision;
      this.cursor = { rev: this.completed, sub: -1 };
    }
    return true;
  }

  get position(): Cursor {
    return this.cursor;
  }

  /** Records a committed batch. */
  advance(plan: BatchPlan): void {
    this.cursor = plan.cursor;
    if (plan.finished) this.completed = Math.max(this.completed, this.target);
  }

  isComplete(revision: number): boolean {
    return revision <= this.completed;
  }
}

/** Scan parameters for `Statements.compactScan`. */
export function scanParams(cursor: Cursor, revision: number, batchSize: number): unknown[] {
  return [cursor.rev, revision, cursor.rev, cursor.sub, batchSize];
}

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
 *
 * A migration copy adds rows at their old revisions, possibly behind the walk. The walk must go over them:
 * a superseded copied row left behind stays for good once the row naming it goes, and when the key is
 * deleted and that delete compacted, the key reads the old version again. So the copy moves the progress
 * back to its lowest row (`copiedIn`), including under a batch running meanwhile (the servers' batches do not
 * hold the write lock): everything at or above a copied row's revision is walked again.
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
  /** Lowest revision copied in since the batch in progress read `position` (undefined: none). */
  private copiedSince?: number;

  /** Positions the walk for `revision`; false when a compaction at or above it has completed already. */
  begin(revision: number): boolean {
    if (revision <= this.completed) return false;
    if (revision !== this.target) {
      this.target = revision;
      this.cursor = { rev: this.completed, sub: -1 };
    }
    return true;
  }

  /** Where the next batch scans from; reading it starts the batch (see `copiedIn`). */
  get position(): Cursor {
    this.copiedSince = undefined;
    return this.cursor;
  }

  /** Records a committed batch; one that ran while rows were copied in behind its end does not move past them. */
  advance(plan: BatchPlan): void {
    const copied = this.copiedSince;
    this.copiedSince = undefined;
    if (copied === undefined) {
      this.cursor = plan.cursor;
      if (plan.finished) this.completed = Math.max(this.completed, this.target);
      return;
    }
    this.cursor = earlier(plan.cursor, { rev: copied, sub: -1 });
  }

  /**
   * Rows were stored at `revision` and above, in place (a migration copy, committed or perhaps committed):
   * the walk goes over them again. A compaction to just below `revision` stays complete: a copied row
   * supersedes rows only at its own revision or later.
   */
  copiedIn(revision: number): void {
    this.completed = Math.min(this.completed, revision - 1);
    this.cursor = earlier(this.cursor, { rev: revision, sub: -1 });
    this.copiedSince = Math.min(this.copiedSince ?? revision, revision);
  }

  isComplete(revision: number): boolean {
    return revision <= this.completed;
  }
}

function earlier(a: Cursor, b: Cursor): Cursor {
  return a.rev < b.rev || (a.rev === b.rev && a.sub <= b.sub) ? a : b;
}

/** Scan parameters for `Statements.compactScan`. */
export function scanParams(cursor: Cursor, revision: number, batchSize: number): unknown[] {
  return [cursor.rev, revision, cursor.rev, cursor.sub, batchSize];
}

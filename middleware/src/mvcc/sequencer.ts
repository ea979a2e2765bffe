/**
 * The middleware's one revision counter and its commit watermark (docs/architecture.md, "The revision model").
 *
 * Revisions are handed out after a write's compares pass, in increasing order. Each allocated revision is
 * later finished: committed, or known not to exist. The watermark `W` is the highest revision with every
 * revision at or below it finished; reads, list snapshots, watch delivery and progress use `W`, so nobody
 * observes a revision while a lower one may still appear. A revision whose commit outcome is unknown (the
 * database failed mid-commit) stays unfinished until the store has checked the database, holding `W` back.
 */
export class Sequencer {
  private next: number;
  private visible: number;
  /** Allocated, unfinished-or-finished revisions above `visible`, in allocation order. */
  private pending: { rev: number; done: boolean }[] = [];
  private readonly listeners: ((watermark: number) => void)[] = [];

  /** `durable` is the highest revision that may exist anywhere (a fresh store starts at 1, like etcd). */
  constructor(durable: number) {
    this.visible = Math.max(1, durable);
    this.next = this.visible + 1;
  }

  /** The commit watermark `W`. */
  get watermark(): number {
    return this.visible;
  }

  /** The newest revision handed out (committed or not). */
  get lastAllocated(): number {
    return this.next - 1;
  }

  allocate(): number {
    return this.allocateAt(this.next);
  }

  /**
   * Allocates exactly `rev` (a child layer takes its parent's revisions: docs/architecture.md, "Layers").
   * The numbers skipped below it were never handed out here and never will be.
   */
  allocateAt(rev: number): number {
    if (!Number.isSafeInteger(rev) || rev < this.next) throw new Error(`revision ${rev} is not above the last one handed out (${this.next - 1}): revisions are never reused`);
    this.next = rev + 1;
    this.pending.push({ rev, done: false });
    return rev;
  }

  /** Marks `rev` committed or aborted; advances the watermark over every finished prefix. */
  finish(rev: number): void {
    const entry = this.pending.find((p) => p.rev === rev);
    if (!entry) throw new Error(`revision ${rev} was not allocated or is already finished`);
    entry.done = true;
    let advanced = false;
    while (this.pending.length && this.pending[0]!.done) {
      this.visible = this.pending.shift()!.rev;
      advanced = true;
    }
    if (advanced) for (const fn of this.listeners) fn(this.visible);
  }

  /**
   * Takes back every revision allocated after `last`, none of which may have been written anywhere (their
   * transaction rolled back before it committed): the next write gets `last + 1`, so a failed write leaves
   * no gap (etcd's revisions move only on successful writes).
   */
  rewind(last: number): void {
    if (last < this.visible) throw new Error(`cannot rewind to ${last}: revisions up to ${this.visible} are visible`);
    if (this.pending.some((p) => p.rev > last && p.done)) throw new Error(`cannot rewind to ${last}: a later revision is finished`);
    this.pending = this.pending.filter((p) => p.rev <= last);
    this.next = Math.min(this.next, last + 1);
  }

  /** Revisions allocated but not finished (their outcome unknown or in progress). */
  get unfinished(): number[] {
    return this.pending.filter((p) => !p.done).map((p) => p.rev);
  }

  onAdvance(fn: (watermark: number) => void): void {
    this.listeners.push(fn);
  }
}

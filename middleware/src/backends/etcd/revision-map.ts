/**
 * The map between global revisions and the etcd revisions that hold them (layout.ts), in memory. A commit
 * writes the global revisions of its batch together in one etcd transaction (a group: they share one etcd
 * revision), or, for one revision with more rows than one etcd transaction takes, in several transactions
 * of its own; everything in order, so both sides ascend together: global G spans etcd revisions
 * [first, last] (first = last but for such a large one), and several globals may share one `last`. The
 * state at G is the etcd state at `last` when G is the top of its group, else that state minus the group's
 * changes above G (etcd-backend.ts). Data written before grouping has one global per etcd revision: groups
 * of one.
 */
export interface RevisionSpan {
  global: number;
  first: number;
  last: number;
}

export class RevisionMap {
  private spans: RevisionSpan[] = [];

  get size(): number {
    return this.spans.length;
  }

  get maxGlobal(): number {
    return this.spans[this.spans.length - 1]?.global ?? 0;
  }

  /** The span of the oldest global revision still mapped. */
  get first(): RevisionSpan | undefined {
    return this.spans[0];
  }

  load(spans: RevisionSpan[]): void {
    this.spans = [...spans].sort((a, b) => a.global - b.global);
  }

  add(span: RevisionSpan): void {
    if (span.global <= this.maxGlobal) throw new Error(`revision map: global revision ${span.global} is not above ${this.maxGlobal}`);
    this.spans.push(span);
  }

  /** Index of the last span with global <= `global`, -1 if none. */
  private floorIndex(global: number): number {
    let lo = 0;
    let hi = this.spans.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.spans[mid]!.global <= global) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1;
  }

  /** The span of the last global revision at or below `global`, undefined if none. */
  floor(global: number): RevisionSpan | undefined {
    const i = this.floorIndex(global);
    return i < 0 ? undefined : this.spans[i];
  }

  /**
   * Whether a global revision above `global` shares its etcd revision: a read at `global` (or at a revision
   * between it and the next mapped one) is then inside a group and must undo the group's later changes.
   */
  midGroup(global: number): boolean {
    const i = this.floorIndex(global);
    if (i < 0) return false;
    const next = this.spans[i + 1];
    return next !== undefined && next.first <= this.spans[i]!.last;
  }

  /**
   * The lowest global revision whose etcd transactions include etcd revision `etcd` (the only one, but for a
   * group), undefined for none: a revision no client sees (copies, drops, reverts, compaction).
   */
  globalOf(etcd: number): number | undefined {
    let lo = 0;
    let hi = this.spans.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.spans[mid]!.last < etcd) lo = mid + 1;
      else hi = mid;
    }
    const s = this.spans[lo];
    return s && s.first <= etcd && etcd <= s.last ? s.global : undefined;
  }

  /** Spans with from <= global <= to. */
  between(from: number, to: number): RevisionSpan[] {
    const out: RevisionSpan[] = [];
    for (let i = this.floorIndex(from - 1) + 1; i < this.spans.length && this.spans[i]!.global <= to; i++) out.push(this.spans[i]!);
    return out;
  }

  remove(globals: Set<number>): void {
    this.spans = this.spans.filter((s) => !globals.has(s.global));
  }

  /** Forgets spans below `global` (compacted away). Returns how many. */
  dropBelow(global: number): number {
    const i = this.floorIndex(global - 1) + 1;
    this.spans = this.spans.slice(i);
    return i;
  }
}

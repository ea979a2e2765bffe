/**
 * The automatic compaction policy of `serve` (--compact-interval, --compact-min-retain): every interval,
 * compact up to `minRetain` revisions below the head, so history stays bounded while watchers and paged
 * lists that lag by less than that keep working. Policy apart from mechanism, like etcd's v3compactor: the
 * store only knows how to compact (compaction.ts), this decides when.
 */
import type { Logger } from '../log.js';
import type { Store } from './store.js';

export interface AutoCompactorOptions {
  /** Time between runs, ms; 0 disables automatic compaction. */
  intervalMs: number;
  /** Revisions always kept below the head. */
  minRetain: number;
  log: Logger;
}

export class AutoCompactor {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Pick<Store, 'revision' | 'compactRevision' | 'compact'> & { child?: { parent: string | undefined } },
    private readonly o: AutoCompactorOptions,
  ) {}

  start(): void {
    if (this.o.intervalMs <= 0 || this.timer) return;
    this.timer = setInterval(() => void this.runOnce(), this.o.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * One run: compacts to `minRetain` below the head when that is above the compact revision. Resolves once
   * the compaction is in effect (old rows are removed afterwards); a failure is logged, the next run retries.
   */
  async runOnce(): Promise<void> {
    // a child layer is compacted by its parent, at the parent's revisions
    if (this.store.child?.parent !== undefined) return;
    const target = this.store.revision - this.o.minRetain;
    if (target <= this.store.compactRevision) return;
    try {
      await this.store.compact(target);
    } catch (err) {
      this.o.log.warn('automatic compaction failed', { target, error: err });
    }
  }
}

/**
 * etcd Compact over the store: the compact revision (below it reads fail, watchers are cancelled) and the
 * removal of compacted rows in bounded steps through the write queue, so writers keep flowing while a large
 * compaction runs. When to compact is policy and lives apart (auto-compactor.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Backend, CompactResult } from '../backends/backend.js';
import { META } from '../backends/meta.js';
import type { Logger } from '../log.js';
import { errCompacted, errFutureRev } from './errors.js';
import { storeMetrics } from './metrics.js';
import type { Sequencer } from './sequencer.js';
import type { WatchHub } from './watch-hub.js';
import type { WriteQueue } from './write-queue.js';

/**
 * How long one removal step may keep deleting batches. A step holds the write queue, so writes wait for it:
 * a budget this small means one batch (`batchSize` rows) per step, then the writes queued meanwhile go,
 * as etcd deletes a batch at a time between its own writes. With a budget of a second and steps back to
 * back, puts fell to 4-5% of their idle rate for as long as a large compaction ran (bench: the compaction
 * row).
 */
const STEP_MS = 10;

export interface CompactionOptions {
  backend: Backend;
  seq: Sequencer;
  hub: WatchHub;
  queue: WriteQueue;
  /** The compact revision persisted by the last run; undefined if this store was never compacted. */
  restored: number | undefined;
  /** Rows deleted per compaction step (default 1,000). */
  batchSize?: number;
  /** Bound on one step, ms (STEP_MS at most); a removal running 20 times this long pauses (default 5,000). */
  timeoutMs?: number;
  log: Logger;
}

export class Compaction {
  private rev: number;
  /** False until the first compaction (etcd's compact revision is then -1: Compact(0) succeeds once). */
  private everCompacted: boolean;
  /** The running removal of compacted rows, and the revision it removes up to. */
  private removal: Promise<number | undefined> | undefined;
  private removalTarget = 0;

  constructor(private readonly o: CompactionOptions) {
    this.rev = o.restored ?? 0;
    this.everCompacted = o.restored !== undefined;
  }

  /** Reads below this revision fail with "compacted" (0 on a store never compacted). */
  get revision(): number {
    return this.rev;
  }

  /** Takes a compact revision that committed (or was found committed after a failed batch); never moves back. */
  advance(rev: number): void {
    if (this.everCompacted && rev <= this.rev) return;
    this.everCompacted = true;
    this.rev = rev;
    this.o.hub.compacted(rev);
    storeMetrics.compactRevision.set(rev);
  }

  /**
   * etcd Compact: from now on reads below `revision` fail; old versions at or below it are deleted in
   * batches (awaited when `physical`). The compaction revision and the revision high-water mark are
   * persisted first, so a restart neither forgets the compaction nor reuses a deleted revision.
   */
  async compact(revision: number, opts: { physical?: boolean; batchSize?: number; timeoutMs?: number } = {}): Promise<void> {
    const { seq, queue } = this.o;
    await queue.submit(true, async (ctx) => {
      // etcd's compact revision starts at -1: Compact(0) on a store never compacted succeeds (and only once)
      if (this.everCompacted ? revision <= this.rev : revision < 0) throw errCompacted();
      if (revision > seq.watermark) throw errFutureRev();
      await ctx.tx.setMeta(META.compactRevision, Buffer.from(String(revision)));
      await ctx.tx.setMeta(META.revisionHighWater, Buffer.from(String(seq.lastAllocated)));
      ctx.afterCommit.push(() => this.advance(revision));
    });
    const removal = this.removeCompacted(revision, opts.batchSize ?? this.o.batchSize ?? 1000, opts.timeoutMs ?? this.o.timeoutMs ?? 5000);
    if (opts.physical) await removal;
    else removal.catch((err) => this.o.log.warn('compaction did not finish', { revision, error: err }));
  }

  /**
   * A compaction a parent layer hands down (docs/architecture.md, "Layers"): its revision is the parent's
   * and may be above this child's newest one (the child holds only the revisions of its keys). The compact
   * revision is persisted once, then one bounded removal step runs; the parent calls again until done.
   */
  async handedDown(revision: number, batchSize: number, deadline: number): Promise<CompactResult> {
    const { backend, queue } = this.o;
    if (!this.everCompacted || revision > this.rev) {
      await queue.submit(true, async (ctx) => {
        await ctx.tx.setMeta(META.compactRevision, Buffer.from(String(revision)));
        ctx.afterCommit.push(() => this.advance(revision));
      });
    }
    const step = await queue.submit(true, async () => undefined, () => backend.compact(revision, batchSize, deadline));
    storeMetrics.compactedRows.inc(step!.deleted);
    return step!;
  }

  /**
   * Deletes compacted rows up to `revision`, one bounded step per turn of the write queue so writers keep
   * flowing. One removal runs at a time and a newer compaction raises its target: two walks with different
   * targets would each restart the other's (the backends keep one walk position), and neither would finish.
   */
  private async removeCompacted(revision: number, batchSize: number, timeoutMs: number): Promise<void> {
    if (revision > this.removalTarget) this.removalTarget = revision;
    for (;;) {
      this.removal ??= this.removeUpToTarget(batchSize, timeoutMs).finally(() => {
        this.removal = undefined;
      });
      const reached = await this.removal;
      // undefined: paused (too slow) or closing; the next compaction resumes it
      if (reached === undefined || reached >= revision) return;
    }
  }

  /** The removal loop: the revision it removed everything up to, undefined when it stopped before. */
  private async removeUpToTarget(batchSize: number, timeoutMs: number): Promise<number | undefined> {
    const { backend, queue, log } = this.o;
    const started = Date.now();
    let deleted = 0;
    let target = this.removalTarget;
    let reached: number | undefined;
    for (;;) {
      target = this.removalTarget;
      let ran = 0;
      let writersWaited = false;
      const step = await queue.submit(true, async () => undefined, async () => {
        const t = Date.now();
        try {
          return await backend.compact(target, batchSize, Date.now() + Math.min(timeoutMs, STEP_MS));
        } finally {
          ran = Date.now() - t;
          writersWaited = queue.waiting > 0;
        }
      });
      deleted += step!.deleted;
      if (step!.done && this.removalTarget === target) {
        reached = target;
        break;
      }
      if (queue.closed) break;
      if (step!.done) continue; // a newer compaction came meanwhile: on to its revision
      // writers that queued behind the step get the queue for as long as the step took: under load compaction
      // takes at most about half of it, on an idle server it runs back to back
      if (writersWaited) await sleep(ran);
      if (Date.now() - started > timeoutMs * 20) {
        log.warn('compaction paused: too slow, the next compaction resumes it', { revision: target, deleted });
        break;
      }
    }
    storeMetrics.compactedRows.inc(deleted);
    if (reached !== undefined) log.info('compacted', { revision: reached, deletedRows: deleted, ms: Date.now() - started });
    return reached;
  }
}

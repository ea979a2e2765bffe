/**
 * The store's single writer (docs/architecture.md, "The revision model"): every write request waits in one
 * queue and the requests queued together commit in one database transaction (group commit), in arrival
 * order. A request that fails alone is taken out of its batch; a batch whose commit failed is resolved
 * against what the database really holds before the next one runs, so no revision is reused or lost.
 */
import { BackendUnavailableError, DeferredWriteError, KeyTooLongError, WriteRolledBackError, type Backend, type WriteTxn } from '../backends/backend.js';
import { META } from '../backends/meta.js';
import type { Logger } from '../log.js';
import type { ResponseHeader } from './api.js';
import { ApplyContext } from './apply.js';
import { EtcdError, errKeyTooLong, errUnavailable } from './errors.js';
import { WatchEvent } from './watch-event.js';
import type { LatestCache } from './latest-cache.js';
import type { LeaseTable } from './leases.js';
import { storeMetrics } from './metrics.js';
import type { Sequencer } from './sequencer.js';
import { storageError } from './storage-error.js';
import type { WatchHub } from './watch-hub.js';

export interface WriteQueueOptions {
  backend: Backend;
  seq: Sequencer;
  leases: LeaseTable;
  hub: WatchHub;
  /** The response header at a revision (the store's cluster and member IDs). */
  header: (revision: number) => ResponseHeader;
  /** Takes every committed event as the watermark passes it, before the hub (the store's read cache). */
  cache?: LatestCache;
  /** Most client writes committed in one database transaction. */
  maxBatch: number;
  /** Runs first in every write transaction (leader fencing, see StoreOptions.fence). */
  fence?: (tx: WriteTxn) => Promise<void>;
  /** Re-reads what a failed barrier job may have changed (lease and compaction state) after a failed batch. */
  reloadAfterDoubt: () => Promise<void>;
  /**
   * Throws when this store may not number a write itself: a child layer takes every revision from its
   * parent (docs/architecture.md, "Layers"), so a client writing to it directly is refused.
   */
  ownRevisionGuard?: () => void;
  log: Logger;
}

type Job = {
  /** Retried alone after a commit across databases was rolled back (it may touch only healthy ones). */
  alone?: boolean;
  /** Runs alone in its batch (lease grant/revoke, compaction: they change what later requests validate against). */
  barrier: boolean;
  /** With a transaction: applied inside the batch's database transaction. Without: run directly, serialised. */
  run: (ctx: ApplyContext) => Promise<unknown>;
  direct?: () => Promise<unknown>;
  /** Keys whose newest version `run` reads (see `WriteTxn.prefetch`). */
  keys?: Buffer[];
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  result?: unknown;
  error?: unknown;
};

/** True for a request that may share its batch with others (see takeBatch). */
function groups(job: Job): boolean {
  return !job.barrier && !job.direct && !job.alone;
}

/** How long a batch keeps retrying without requests that found their database unavailable (see commitBatch). */
const UNAVAILABLE_RETRY_BUDGET_MS = 2000;

/** How often readiness tries a write while writes fail (see `writable`). */
const WRITE_PROBE_INTERVAL_MS = 1000;

export class WriteQueue {
  private readonly queue: Job[] = [];
  private pumping = false;
  private stopped = false;
  /** Revisions of a batch whose commit outcome is unknown (the database failed during it). */
  private inDoubt: number[] | undefined;
  /** Committed events above the watermark, handed to the hub as it passes them. */
  private pendingEvents: WatchEvent[] = [];
  /** Why the last write batch could not commit (storage unavailable); cleared by the next commit. */
  private writeFailure: Error | undefined;
  private writeProbe: Promise<boolean> | undefined;

  constructor(private readonly o: WriteQueueOptions) {
    o.seq.onAdvance((w) => this.publish(w));
  }

  /** True once `close` was called: new writes are refused. */
  get closed(): boolean {
    return this.stopped;
  }

  /** Requests queued and not yet taken into a batch. */
  get waiting(): number {
    return this.queue.length;
  }

  /**
   * Queues a write. `run` is applied inside a batch's database transaction; a `barrier` runs alone in its
   * batch; with `direct`, that runs instead, outside any transaction, between two batches.
   */
  submit<T>(barrier: boolean, run: (ctx: ApplyContext) => Promise<T>, direct?: () => Promise<T>, keys?: Buffer[]): Promise<T> {
    if (this.stopped) return Promise.reject(errUnavailable('the server is shutting down'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ barrier, run, direct, keys, resolve: resolve as (v: unknown) => void, reject });
      void this.pump();
    });
  }

  private takeBatch(): Job[] {
    const first = this.queue.shift()!;
    if (!groups(first)) return [first];
    const batch = [first];
    while (batch.length < this.o.maxBatch && this.queue.length && groups(this.queue[0]!)) batch.push(this.queue.shift()!);
    return batch;
  }

  /** Keys the requests queued now would read as the next batch (see takeBatch and WriteTxn.readAheadAfterCommit). */
  private nextBatchKeys(): Buffer[] {
    const keys: Buffer[] = [];
    for (let i = 0; i < this.queue.length && i < this.o.maxBatch && groups(this.queue[i]!); i++) keys.push(...(this.queue[i]!.keys ?? []));
    return keys;
  }

  /** The single writer loop: group commit of everything queued, in arrival order. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length) {
        if (this.inDoubt) {
          try {
            await this.resolveDoubt();
          } catch (err) {
            const e = storageError(err, this.o.log);
            for (const job of this.queue.splice(0)) job.reject(e);
            break;
          }
        }
        // Let the event loop read requests that arrived during the last commit first: with a synchronous
        // database (SQLite) nothing is read while it commits, and these requests form the next group commit.
        await new Promise<void>((resolve) => setImmediate(resolve));
        const batch = this.takeBatch();
        if (batch[0]!.direct) {
          const job = batch[0]!;
          try {
            job.resolve(await job.direct!());
          } catch (err) {
            job.reject(err instanceof EtcdError ? err : storageError(err, this.o.log));
          }
          continue;
        }
        await this.commitBatch(batch);
      }
    } finally {
      this.pumping = false;
    }
  }

  /**
   * Commits `batch` in one database transaction. A request whose apply fails with anything but an etcd
   * error it answers alone (a key the database cannot store, a database of a routed topology that is down,
   * an unexpected error) is taken out: the transaction rolls back (nothing of it committed, so its
   * revisions are taken back and leave no gap) and the rest of the batch is applied again without it.
   * Only a failure of the fence or of COMMIT itself fails the whole batch.
   */
  private async commitBatch(batch: Job[]): Promise<void> {
    const started = performance.now();
    let jobs = batch;
    let unavailableRetries = 0;
    let unavailableFailures = 0;
    // barriers (leases, compaction) write little and must see every statement's own failure
    let batched = !jobs[0]!.barrier;
    for (;;) {
      const outcome = await this.attemptBatch(jobs, batched);
      if (outcome.unbatched) {
        // held rows could not be written and nobody knows whose: again, each statement on its own
        batched = false;
        continue;
      }
      if (outcome.retryAlone) {
        // a commit across databases failed and was taken back: each request again on its own, so only
        // those touching the failed database fail
        for (const job of jobs) {
          job.alone = true;
          job.result = job.error = undefined;
        }
        this.queue.unshift(...jobs);
        return;
      }
      if (outcome.failedJob === undefined) break;
      const failed = outcome.failedJob;
      const e = this.requestError(outcome.error);
      if (e.kind === 'unavailable') this.o.log.warn('a write request failed; the rest of its batch is retried without it', { error: outcome.error });
      failed.reject(e);
      jobs = jobs.filter((j) => j !== failed);
      if (e.kind === 'unavailable') unavailableFailures++;
      if (jobs.length === 0) {
        // nothing of the batch could be stored, for lack of storage: not ready until a write commits
        if (unavailableFailures === batch.length) this.writeFailure = e;
        return;
      }
      // A database that is down answers quickly (refused connection) or only after --query-timeout; retrying
      // the rest of the batch for every request that touches it must not multiply the latter.
      if (e.kind === 'unavailable' && ++unavailableRetries > 1 && performance.now() - started > UNAVAILABLE_RETRY_BUDGET_MS) {
        this.o.log.warn('write batch failed', { requests: jobs.length, error: outcome.error });
        this.writeFailure = e;
        for (const job of jobs) job.reject(e);
        return;
      }
    }
    storeMetrics.batchSize.observe(jobs.length);
    storeMetrics.commitSeconds.observe((performance.now() - started) / 1000);
  }

  /**
   * One try at committing `jobs`. Resolves with the job whose apply threw (the transaction rolled back,
   * nothing committed), or settles every job once committed; a failed fence or COMMIT rejects them all.
   * `batched`: the transaction holds the batch's rows until commit where it can (`WriteTxn.holdWrites`: one
   * insert for the batch); when they cannot be written, `unbatched` asks for the same jobs again without it.
   */
  private async attemptBatch(jobs: Job[], batched: boolean): Promise<{ failedJob?: Job; error?: unknown; retryAlone?: boolean; unbatched?: boolean }> {
    const { seq, backend } = this.o;
    const contexts: ApplyContext[] = [];
    const base = seq.lastAllocated;
    let failedJob: Job | undefined;
    let failure: unknown;
    let tx: WriteTxn | undefined;
    let committing = false;
    let deferred = false;
    try {
      tx = await backend.begin();
      if (this.o.fence) await this.o.fence(tx);
      if (batched && tx.holdWrites) {
        deferred = true;
        tx.holdWrites();
      }
      if (tx.prefetch) {
        const keys = jobs.flatMap((j) => j.keys ?? []);
        // a hint: a key whose database fails is read again by its request, which then fails alone
        if (keys.length > 0) await tx.prefetch(keys).catch(() => undefined);
      }
      for (const job of jobs) {
        const ctx = new ApplyContext(
          tx,
          this.o.leases,
          (at) => {
            if (at !== undefined) return seq.allocateAt(at);
            this.o.ownRevisionGuard?.();
            return seq.allocate();
          },
          () => seq.lastAllocated,
          this.o.header,
        );
        contexts.push(ctx);
        job.error = undefined;
        try {
          job.result = await job.run(ctx);
        } catch (err) {
          // a request rejected before it wrote anything fails alone, in a batch that commits
          if (err instanceof EtcdError && ctx.rows.length === 0) {
            job.error = err;
            continue;
          }
          failedJob = job;
          failure = err;
          throw err;
        }
      }
      if (tx.readAheadAfterCommit) {
        const next = this.nextBatchKeys();
        if (next.length > 0) tx.readAheadAfterCommit(next);
      }
      committing = true;
      await tx.commit();
    } catch (err) {
      if (!committing) await tx?.rollback();
      if (deferred && (failure ?? err) instanceof DeferredWriteError) {
        // certainly not committed (see WriteTxn.holdWrites): none of its revisions exists anywhere
        seq.rewind(base);
        this.o.log.debug('a write batch could not be written at once; applying it statement by statement', { requests: jobs.length, error: failure ?? err });
        return { unbatched: true };
      }
      if (failedJob) {
        // thrown inside the transaction: it rolled back, none of its revisions exists anywhere
        seq.rewind(base);
        return { failedJob, error: failure };
      }
      const revs = contexts.flatMap((c) => c.revisions);
      if (err instanceof WriteRolledBackError) {
        // nothing of it remains (or is reverted before its database is used again, which is why these
        // revisions are skipped, never handed out again)
        for (const r of revs) seq.finish(r);
        if (jobs.length > 1) return { retryAlone: true };
        const e = storageError(err, this.o.log);
        this.o.log.warn('write rolled back', { error: err });
        jobs[0]!.reject(e);
        return {};
      }
      if (err instanceof BackendUnavailableError && err.rolledBack) seq.rewind(base);
      else if (revs.length) this.inDoubt = revs;
      const e = storageError(err, this.o.log);
      if (e.kind === 'unavailable') this.writeFailure = e;
      this.o.log.warn('write batch failed', { requests: jobs.length, error: err, inDoubt: this.inDoubt?.length ?? 0 });
      for (const job of jobs) job.reject(e);
      return {};
    }
    this.writeFailure = undefined;
    for (const ctx of contexts) {
      this.o.leases.applyRows(ctx.rows);
      for (const fn of ctx.afterCommit) fn();
      for (const e of ctx.events) this.pendingEvents.push(e);
    }
    for (const ctx of contexts) for (const r of ctx.revisions) seq.finish(r);
    for (const job of jobs) {
      if (job.error) job.reject(job.error);
      else job.resolve(job.result);
    }
    return {};
  }

  /** The error one request gets when its own apply failed (see commitBatch). */
  private requestError(err: unknown): EtcdError {
    if (err instanceof KeyTooLongError) return errKeyTooLong(err);
    return storageError(err, this.o.log);
  }

  /**
   * After a failed batch, finds out what the database actually committed: rows that made it are
   * published like any commit (watchers miss nothing), the rest of those revisions are skipped (never
   * reused). Lease and compaction state are re-read, as a failed barrier job may have changed them.
   */
  private async resolveDoubt(): Promise<void> {
    const revs = this.inDoubt!;
    await this.o.backend.recover();
    const lo = Math.min(...revs);
    const hi = Math.max(...revs);
    const rows = await this.o.backend.changes(lo, hi, Number.MAX_SAFE_INTEGER);
    await this.o.reloadAfterDoubt();
    for (const r of rows) this.pendingEvents.push(WatchEvent.fromRow(r, r.prev));
    this.inDoubt = undefined;
    this.o.log.info('resolved writes of a failed batch', { revisions: revs.length, committed: rows.length });
    for (const r of revs) this.o.seq.finish(r);
  }

  /** Hands events at or below the new watermark to the watch hub. */
  private publish(watermark: number): void {
    let n = 0;
    while (n < this.pendingEvents.length && this.pendingEvents[n]!.revision <= watermark) n++;
    const ready = n === this.pendingEvents.length ? this.pendingEvents : this.pendingEvents.slice(0, n);
    this.pendingEvents = n === this.pendingEvents.length ? [] : this.pendingEvents.slice(n);
    this.o.cache?.apply(ready);
    this.o.hub.publish(ready, watermark);
    storeMetrics.revision.set(watermark);
  }

  /**
   * True unless the last write batch failed for lack of storage (a full disk, a database refusing writes);
   * then true only once a write commits again: a small write of the meta store is tried at most once a
   * second while callers ask.
   */
  writable(): Promise<boolean> {
    if (!this.writeFailure) return Promise.resolve(true);
    this.writeProbe ??= this.probeWrite().finally(() => {
      const t = setTimeout(() => (this.writeProbe = undefined), WRITE_PROBE_INTERVAL_MS);
      t.unref();
    });
    return this.writeProbe;
  }

  /** Commits a small meta write through the queue; true if it committed. */
  private async probeWrite(): Promise<boolean> {
    try {
      await this.submit(true, async (ctx) => {
        await ctx.tx.setMeta(META.writeProbe, Buffer.from(String(Date.now())));
      });
      return true;
    } catch {
      return false;
    }
  }

  /** Refuses new writes and resolves once the queued ones are done. */
  async close(): Promise<void> {
    this.stopped = true;
    while (this.pumping || this.queue.length) await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * The etcd key-value store over one backend: reads at the commit watermark, writes through a single
 * queue with group commit, compaction and leases. Storage-agnostic: it speaks only the `Backend`
 * interface, and owns the revision counter (`Sequencer`) so several backends can later sit under it.
 */
import { randomBytes } from 'node:crypto';
import { META, metaRevision } from '../backends/meta.js';
import { BackendUnavailableError, KeyTooLongError, WriteRolledBackError, inWriteTxn, type Backend, type WriteTxn } from '../backends/backend.js';
import { logger as rootLogger, type Logger } from '../log.js';
import {
  num,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type ResponseHeader,
  type TxnRequest,
  type TxnResponse,
} from './api.js';
import { ApplyContext, applyDeleteRange, applyPut, applyTxn } from './apply.js';
import {
  EtcdError,
  errCompacted,
  errFutureRev,
  errKeyTooLong,
  errLeaseExists,
  errLeaseNotFound,
  errLeaseTTLTooLarge,
  errUnavailable,
} from './errors.js';
import { WatchEvent } from './event-codec.js';
import { rangeEnd } from './key-range.js';
import { LeaseTable, MAX_LEASE_TTL, type LeaseState } from './leases.js';
import { PageCounts, finishRange, needsFullRead } from './range.js';
import { RangeCounts } from './range-counts.js';
import { Sequencer } from './sequencer.js';
import { WatchHub } from './watch-hub.js';
import { storeMetrics } from './metrics.js';

export { META } from '../backends/meta.js';

export interface StoreOptions {
  backend: Backend;
  /** Most client writes committed in one database transaction (default 512). */
  maxBatch?: number;
  /** Events kept in memory for watch catch-up. */
  ringEvents?: number;
  /** Smallest lease TTL granted, seconds (etcd raises smaller ones; default 2, etcd's with its default timing). */
  minLeaseTtl?: number;
  /** Rows deleted per compaction step (default 1,000). */
  compactBatchSize?: number;
  /** Longest one compaction step may take, ms (default 5,000). */
  compactTimeoutMs?: number;
  logger?: Logger;
  /**
   * Runs first in every write transaction and throws if this process may no longer write (leader fencing:
   * docs/architecture.md, "One writer"). Its failure fails the batch before any revision is allocated.
   */
  fence?: (tx: WriteTxn) => Promise<void>;
}

type Job = {
  /** Retried alone after a commit across databases was rolled back (it may touch only healthy ones). */
  alone?: boolean;
  /** Runs alone in its batch (lease grant/revoke, compaction: they change what later requests validate against). */
  barrier: boolean;
  /** With a transaction: applied inside the batch's database transaction. Without: run directly, serialised. */
  run: (ctx: ApplyContext) => Promise<unknown>;
  direct?: () => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  result?: unknown;
  error?: unknown;
};

/** How long a batch keeps retrying without requests that found their database unavailable (see commitBatch). */
const UNAVAILABLE_RETRY_BUDGET_MS = 2000;

/**
 * etcd's smallest lease TTL with its default timing: 1.5 election timeouts (3 x 10 ticks / 2 of 100 ms),
 * rounded up to whole seconds. etcd grants smaller (and zero) TTLs as this.
 */
const ETCD_MIN_LEASE_TTL = 2;

/** How often readiness tries a write while writes fail (see `Store.ready`). */
const WRITE_PROBE_INTERVAL_MS = 1000;

function randomId(): string {
  // positive int63, like etcd's IDs; never 0
  return ((randomBytes(8).readBigUInt64BE() >> 1n) | 1n).toString();
}

export class Store {
  readonly leases = new LeaseTable();
  hub!: WatchHub;
  clusterId = '0';
  memberId = '0';
  private seq!: Sequencer;
  private compactRev = 0;
  /** False until the first compaction (etcd's compact revision is then -1: Compact(0) succeeds once). */
  private everCompacted = false;
  private readonly queue: Job[] = [];
  private pumping = false;
  /** Revisions of a batch whose commit outcome is unknown (the database failed during it). */
  private inDoubt: number[] | undefined;
  private pendingEvents: WatchEvent[] = [];
  private leaseTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Why the last write batch could not commit (storage unavailable); cleared by the next commit. */
  private writeFailure: Error | undefined;
  private writeProbe: Promise<boolean> | undefined;
  private readonly log: Logger;
  private readonly maxBatch: number;
  private readonly minLeaseTtl: number;

  private constructor(
    readonly backend: Backend,
    private readonly opts: StoreOptions,
  ) {
    this.log = (opts.logger ?? rootLogger).child({ component: 'store' });
    this.maxBatch = opts.maxBatch ?? 512;
    this.minLeaseTtl = opts.minLeaseTtl ?? ETCD_MIN_LEASE_TTL;
  }

  /** Opens the backend, restores revision, compaction and lease state, starts lease expiry. */
  static async open(opts: StoreOptions): Promise<Store> {
    const store = new Store(opts.backend, opts);
    await store.restore();
    return store;
  }

  private async restore(): Promise<void> {
    const b = this.backend;
    await b.open();
    await b.recover();
    const [maxRev, hwm, compact, cluster, member] = await Promise.all([
      b.maxRevision(),
      b.getMeta(META.revisionHighWater),
      b.getMeta(META.compactRevision),
      b.getMeta(META.clusterId),
      b.getMeta(META.memberId),
    ]);
    this.clusterId = cluster?.toString() ?? randomId();
    this.memberId = member?.toString() ?? randomId();
    if (!cluster || !member) {
      await inWriteTxn(b, async (tx) => {
        await tx.setMeta(META.clusterId, Buffer.from(this.clusterId));
        await tx.setMeta(META.memberId, Buffer.from(this.memberId));
      });
    }
    // next revision is above everything that may ever have existed: nothing is renumbered
    this.seq = new Sequencer(Math.max(maxRev, metaRevision(hwm)));
    this.compactRev = metaRevision(compact);
    this.everCompacted = compact !== undefined;
    this.hub = new WatchHub({
      backend: b,
      revision: this.seq.watermark,
      compactRevision: this.everCompacted ? this.compactRev : -1,
      ringEvents: this.opts.ringEvents,
      onError: (err) => this.log.warn('watch catch-up failed; retrying', { error: err }),
    });
    this.seq.onAdvance((w) => this.publish(w));
    this.leases.load(await b.leases(), await b.leasedKeys());
    storeMetrics.revision.set(this.seq.watermark);
    storeMetrics.compactRevision.set(this.compactRev);
    storeMetrics.leases.set(this.leases.size);
    this.scheduleLeaseExpiry();
    this.log.info('store opened', {
      backend: b.description,
      revision: this.seq.watermark,
      compactRevision: this.compactRev,
      leases: this.leases.size,
    });
  }

  /** The commit watermark: the revision reads and watches see. */
  get revision(): number {
    return this.seq.watermark;
  }

  get compactRevision(): number {
    return this.compactRev;
  }

  header(revision = this.seq.watermark): ResponseHeader {
    return { cluster_id: this.clusterId, member_id: this.memberId, revision, raft_term: 1 };
  }

  // ---- reads ----------------------------------------------------------------------------------------

  /** Validates a read revision against the watermark and the compaction revision. */
  private readRevision(requested: number): number {
    const head = this.seq.watermark;
    if (requested <= 0) return head;
    if (requested > head) throw errFutureRev();
    if (requested < this.compactRev) throw errCompacted();
    return requested;
  }

  /** Counts of continued pages, derived from the page before (see PageCounts). */
  private readonly pageCounts = new PageCounts();
  /** Counts of whole ranges, carried forward by the events since (see RangeCounts). */
  private readonly rangeCounts = new RangeCounts({ eventsBetween: (after, upTo, max, fn) => this.hub.eventsBetween(after, upTo, max, fn) });

  async range(req: RangeRequest): Promise<RangeResponse> {
    const rev = this.readRevision(num(req.revision));
    const header = this.header();
    const end = rangeEnd(req.range_end);
    try {
      if (req.count_only) {
        return finishRange(req, [], await this.count(req.key, end, rev), header);
      }
      const limit = num(req.limit);
      const fetchAll = limit <= 0 || needsFullRead(req);
      const keysOnly = req.keys_only && req.sort_target !== 'Value';
      const rows = await this.backend.range({ start: req.key, end, revision: rev, limit: fetchAll ? 0 : limit + 1, keysOnly });
      if (fetchAll || rows.length <= limit || !end) return finishRange(req, rows, rows.length, header);
      // etcd's count is every key in the range, not only the page returned
      const total = this.pageCounts.lookup(req.key, end, rev) ?? (await this.count(req.key, end, rev));
      this.pageCounts.remember(end, rev, rows, limit, total);
      return finishRange(req, rows, total, header);
    } catch (err) {
      throw this.storageError(err);
    }
  }

  /** Live keys of [start, end) at `rev`: from a count already taken when the events since are known. */
  private async count(start: Buffer, end: Buffer | undefined, rev: number): Promise<number> {
    if (end === undefined) return this.backend.count(start, end, rev);
    const known = this.rangeCounts.lookup(start, end, rev);
    if (known !== undefined) return known;
    const counted = await this.backend.count(start, end, rev);
    this.rangeCounts.remember(start, end, rev, counted);
    return counted;
  }

  // ---- writes ---------------------------------------------------------------------------------------

  put(req: PutRequest): Promise<PutResponse> {
    return this.submit(false, (ctx) => applyPut(ctx, req));
  }

  deleteRange(req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    return this.submit(false, (ctx) => applyDeleteRange(ctx, req));
  }

  txn(req: TxnRequest): Promise<TxnResponse> {
    return this.submit(false, (ctx) => applyTxn(ctx, req));
  }

  private submit<T>(barrier: boolean, run: (ctx: ApplyContext) => Promise<T>, direct?: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(errUnavailable('the server is shutting down'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ barrier, run, direct, resolve: resolve as (v: unknown) => void, reject });
      void this.pump();
    });
  }

  private takeBatch(): Job[] {
    const first = this.queue.shift()!;
    if (first.barrier || first.direct || first.alone) return [first];
    const batch = [first];
    while (batch.length < this.maxBatch && this.queue.length && !this.queue[0]!.barrier && !this.queue[0]!.direct && !this.queue[0]!.alone) {
      batch.push(this.queue.shift()!);
    }
    return batch;
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
            const e = this.storageError(err);
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
            job.reject(err instanceof EtcdError ? err : this.storageError(err));
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
    for (;;) {
      const outcome = await this.attemptBatch(jobs);
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
      if (e.kind === 'unavailable') this.log.warn('a write request failed; the rest of its batch is retried without it', { error: outcome.error });
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
        this.log.warn('write batch failed', { requests: jobs.length, error: outcome.error });
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
   */
  private async attemptBatch(jobs: Job[]): Promise<{ failedJob?: Job; error?: unknown; retryAlone?: boolean }> {
    const contexts: ApplyContext[] = [];
    const base = this.seq.lastAllocated;
    let failedJob: Job | undefined;
    let failure: unknown;
    let tx: WriteTxn | undefined;
    let committing = false;
    try {
      tx = await this.backend.begin();
      if (this.opts.fence) await this.opts.fence(tx);
      for (const job of jobs) {
        const ctx = new ApplyContext(
          tx,
          this.leases,
          () => this.seq.allocate(),
          () => this.seq.lastAllocated,
          (r) => this.header(r),
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
      committing = true;
      await tx.commit();
    } catch (err) {
      if (!committing) await tx?.rollback();
      if (failedJob) {
        // thrown inside the transaction: it rolled back, none of its revisions exists anywhere
        this.seq.rewind(base);
        return { failedJob, error: failure };
      }
      const revs = contexts.map((c) => c.rev).filter((r) => r > 0);
      if (err instanceof WriteRolledBackError) {
        // nothing of it remains (or is reverted before its database is used again, which is why these
        // revisions are skipped, never handed out again)
        for (const r of revs) this.seq.finish(r);
        if (jobs.length > 1) return { retryAlone: true };
        const e = this.storageError(err);
        this.log.warn('write rolled back', { error: err });
        jobs[0]!.reject(e);
        return {};
      }
      if (err instanceof BackendUnavailableError && err.rolledBack) this.seq.rewind(base);
      else if (revs.length) this.inDoubt = revs;
      const e = this.storageError(err);
      if (e.kind === 'unavailable') this.writeFailure = e;
      this.log.warn('write batch failed', { requests: jobs.length, error: err, inDoubt: this.inDoubt?.length ?? 0 });
      for (const job of jobs) job.reject(e);
      return {};
    }
    this.writeFailure = undefined;
    for (const ctx of contexts) {
      this.leases.applyRows(ctx.rows);
      for (const fn of ctx.afterCommit) fn();
      for (const e of ctx.events) this.pendingEvents.push(e);
    }
    for (const ctx of contexts) if (ctx.rev) this.seq.finish(ctx.rev);
    for (const job of jobs) {
      if (job.error) job.reject(job.error);
      else job.resolve(job.result);
    }
    return {};
  }

  /** The error one request gets when its own apply failed (see commitBatch). */
  private requestError(err: unknown): EtcdError {
    if (err instanceof KeyTooLongError) return errKeyTooLong(err);
    return this.storageError(err);
  }

  /**
   * After a failed batch, finds out what the database actually committed: rows that made it are
   * published like any commit (watchers miss nothing), the rest of those revisions are skipped (never
   * reused). Lease and compaction state are re-read, as a failed barrier job may have changed them.
   */
  private async resolveDoubt(): Promise<void> {
    const revs = this.inDoubt!;
    await this.backend.recover();
    const lo = Math.min(...revs);
    const hi = Math.max(...revs);
    const rows = await this.backend.changes(lo, hi, Number.MAX_SAFE_INTEGER);
    const [leases, leasedKeys, compact] = await Promise.all([
      this.backend.leases(),
      this.backend.leasedKeys(),
      this.backend.getMeta(META.compactRevision),
    ]);
    this.leases.load(leases, leasedKeys);
    if (compact !== undefined) this.setCompactRevision(metaRevision(compact));
    for (const r of rows) this.pendingEvents.push(WatchEvent.fromRow(r, r.prev));
    this.inDoubt = undefined;
    this.log.info('resolved writes of a failed batch', { revisions: revs.length, committed: rows.length });
    for (const r of revs) this.seq.finish(r);
  }

  /** Hands events at or below the new watermark to the watch hub. */
  private publish(watermark: number): void {
    let n = 0;
    while (n < this.pendingEvents.length && this.pendingEvents[n]!.revision <= watermark) n++;
    const ready = n === this.pendingEvents.length ? this.pendingEvents : this.pendingEvents.slice(0, n);
    this.pendingEvents = n === this.pendingEvents.length ? [] : this.pendingEvents.slice(n);
    this.hub.publish(ready, watermark);
    storeMetrics.revision.set(watermark);
  }

  private storageError(err: unknown): EtcdError {
    if (err instanceof EtcdError) return err;
    if (err instanceof BackendUnavailableError) return errUnavailable(err.message);
    this.log.error('storage error', { error: err, stack: (err as Error)?.stack });
    return errUnavailable(`unexpected storage error: ${(err as Error)?.message ?? String(err)}`);
  }

  /**
   * Runs `fn` between two write batches, with every earlier write committed and nothing else in flight
   * (topology changes use it to swap the routing). What `fn` writes through `tx` commits together with the
   * revision high-water mark, so revisions stay unique even if a backend that held the newest ones is
   * dropped; `then` runs after that commit and before the next batch. When `fn` returns false nothing is
   * written and `then` does not run (errors thrown by `fn` count as storage failures).
   */
  async exclusive(fn: (tx: WriteTxn, watermark: number) => Promise<boolean>, then: () => void): Promise<boolean> {
    return this.submit(true, async (ctx) => {
      if (!(await fn(ctx.tx, this.seq.watermark))) return false;
      await ctx.tx.setMeta(META.revisionHighWater, Buffer.from(String(this.seq.lastAllocated)));
      ctx.afterCommit.push(then);
      return true;
    });
  }

  // ---- compaction -----------------------------------------------------------------------------------

  private setCompactRevision(rev: number): void {
    if (this.everCompacted && rev <= this.compactRev) return;
    this.everCompacted = true;
    this.compactRev = rev;
    this.hub.compacted(rev);
    storeMetrics.compactRevision.set(rev);
  }

  /**
   * etcd Compact: from now on reads below `revision` fail; old versions at or below it are deleted in
   * batches (awaited when `physical`). The compaction revision and the revision high-water mark are
   * persisted first, so a restart neither forgets the compaction nor reuses a deleted revision.
   */
  async compact(revision: number, opts: { physical?: boolean; batchSize?: number; timeoutMs?: number } = {}): Promise<ResponseHeader> {
    await this.submit(true, async (ctx) => {
      // etcd's compact revision starts at -1: Compact(0) on a store never compacted succeeds (and only once)
      if (this.everCompacted ? revision <= this.compactRev : revision < 0) throw errCompacted();
      if (revision > this.seq.watermark) throw errFutureRev();
      await ctx.tx.setMeta(META.compactRevision, Buffer.from(String(revision)));
      await ctx.tx.setMeta(META.revisionHighWater, Buffer.from(String(this.seq.lastAllocated)));
      ctx.afterCommit.push(() => this.setCompactRevision(revision));
    });
    const removal = this.removeCompacted(
      revision,
      opts.batchSize ?? this.opts.compactBatchSize ?? 1000,
      opts.timeoutMs ?? this.opts.compactTimeoutMs ?? 5000,
    );
    if (opts.physical) await removal;
    else removal.catch((err) => this.log.warn('compaction did not finish', { revision, error: err }));
    return this.header();
  }

  /** Deletes compacted rows, one bounded step per turn of the write queue so writers keep flowing. */
  private async removeCompacted(revision: number, batchSize: number, timeoutMs: number): Promise<void> {
    const started = Date.now();
    let deleted = 0;
    for (;;) {
      const step = await this.submit(
        true,
        async () => undefined,
        () => this.backend.compact(revision, batchSize, Date.now() + Math.min(timeoutMs, 1000)),
      );
      deleted += step!.deleted;
      if (step!.done || this.closed) break;
      if (Date.now() - started > timeoutMs * 20) {
        this.log.warn('compaction paused: too slow, the next compaction resumes it', { revision, deleted });
        break;
      }
    }
    storeMetrics.compactedRows.inc(deleted);
    this.log.info('compacted', { revision, deletedRows: deleted, ms: Date.now() - started });
  }

  // ---- leases ---------------------------------------------------------------------------------------

  async leaseGrant(requestedId: string, ttl: number): Promise<{ id: string; ttl: number; header: ResponseHeader }> {
    if (ttl > MAX_LEASE_TTL) throw errLeaseTTLTooLarge();
    const granted = Math.max(ttl, this.minLeaseTtl);
    return this.submit(true, async (ctx) => {
      let leaseId = requestedId;
      if (leaseId === '0') {
        do leaseId = randomId();
        while (this.leases.has(leaseId));
      } else if (this.leases.has(leaseId)) {
        throw errLeaseExists();
      }
      const row = { id: leaseId, ttl: granted, expiresAt: Date.now() + granted * 1000 };
      await ctx.tx.putLease(row);
      ctx.afterCommit.push(() => {
        this.leases.add(row);
        storeMetrics.leases.set(this.leases.size);
        this.scheduleLeaseExpiry();
      });
      return { id: leaseId, ttl: granted, header: ctx.responseHeader() };
    });
  }

  /** Revokes a lease: every key attached is deleted at one revision (DELETE events carry prev_kv). */
  leaseRevoke(leaseId: string): Promise<ResponseHeader> {
    return this.submit(true, async (ctx) => {
      const lease = this.leases.get(leaseId);
      if (!lease) throw errLeaseNotFound();
      const keys = [...lease.keys].map((k) => Buffer.from(k, 'latin1')).sort(Buffer.compare);
      await ctx.tx.deleteLease(leaseId);
      for (const key of keys) await applyDeleteRange(ctx, { key });
      ctx.afterCommit.push(() => {
        this.leases.remove(leaseId);
        storeMetrics.leases.set(this.leases.size);
      });
      return ctx.responseHeader();
    });
  }

  /** Renews a lease; TTL 0 when it does not exist (etcd answers keep-alives that way, not with an error). */
  async leaseKeepAlive(leaseId: string): Promise<{ ttl: number; header: ResponseHeader }> {
    const lease = this.leases.get(leaseId);
    if (!lease) return { ttl: 0, header: this.header() };
    const expiresAt = Date.now() + lease.ttl * 1000;
    await this.submit(false, async (ctx) => {
      await ctx.tx.putLease({ id: lease.id, ttl: lease.ttl, expiresAt });
      ctx.afterCommit.push(() => {
        lease.expiresAt = Math.max(lease.expiresAt, expiresAt);
      });
    });
    return { ttl: lease.ttl, header: this.header() };
  }

  leaseTimeToLive(leaseId: string): { lease: LeaseState; remaining: number } {
    const lease = this.leases.get(leaseId);
    if (!lease) throw errLeaseNotFound();
    return { lease, remaining: Math.max(0, Math.floor((lease.expiresAt - Date.now()) / 1000)) };
  }

  private scheduleLeaseExpiry(): void {
    if (this.closed) return;
    const next = this.leases.nextExpiry();
    clearTimeout(this.leaseTimer);
    if (next === undefined) return;
    const delay = Math.min(Math.max(next - Date.now(), 10), 1000);
    this.leaseTimer = setTimeout(() => void this.expireLeases(), delay);
    this.leaseTimer.unref();
  }

  private async expireLeases(): Promise<void> {
    for (const lease of this.leases.expired(Date.now())) {
      try {
        await this.leaseRevoke(lease.id);
        storeMetrics.expiredLeases.inc();
      } catch (err) {
        if (!(err instanceof EtcdError && err.message === errLeaseNotFound().message)) {
          this.log.warn('lease expiry failed; retrying', { lease: lease.id, error: err });
        }
      }
    }
    this.scheduleLeaseExpiry();
  }

  // ---- status ---------------------------------------------------------------------------------------

  async dbSize(): Promise<number> {
    try {
      return await this.backend.sizeBytes();
    } catch (err) {
      throw this.storageError(err);
    }
  }

  /**
   * True when the default backend (the meta store) answers and writes can commit. A routed backend that is
   * down fails only the requests for its keys; reporting the whole server unready would take every other
   * key offline too. After a write batch failed for lack of storage (a full disk, a database refusing
   * writes), readiness stays false until a write commits again: a small write of the meta store is tried at
   * most once a second while the probes ask.
   */
  async ready(): Promise<boolean> {
    try {
      await this.backend.getMeta(META.clusterId);
    } catch {
      return false;
    }
    if (!this.writeFailure) return true;
    this.writeProbe ??= this.probeWrite().finally(() => {
      const t = setTimeout(() => (this.writeProbe = undefined), WRITE_PROBE_INTERVAL_MS);
      t.unref();
    });
    return this.writeProbe;
  }

  /** Commits a small meta write through the write queue; true if it committed. */
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

  /** Stops taking writes, lets queued ones finish, closes the backend. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.leaseTimer);
    while (this.pumping || this.queue.length) await new Promise((r) => setTimeout(r, 10));
    await this.backend.close();
  }
}

/**
 * The etcd key-value store over one backend: opens and restores it, reads at the commit watermark, and is
 * the API the server calls. Writes go through the single write queue (write-queue.ts), compaction and leases
 * are their own parts (compaction.ts, lessor.ts), as etcd splits its kvstore. Storage-agnostic: it speaks
 * only the `Backend` interface, and owns the revision counter (`Sequencer`) so several backends can sit
 * under it.
 */
import { META, metaRevision } from '../backends/meta.js';
import { inWriteTxn, type Backend, type KeyRow, type WriteTxn } from '../backends/backend.js';
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
import { applyDeleteRange, applyPut, applyTxn } from './apply.js';
import { ChildLayer } from './child-layer.js';
import { Compaction } from './compaction.js';
import { errCompacted, errFutureRev } from './errors.js';
import { rangeEnd } from './key-range.js';
import { LatestCache } from './latest-cache.js';
import { LeaseTable, type LeaseState } from './leases.js';
import { Lessor } from './lessor.js';
import { randomId } from './random-id.js';
import { PageCounts, finishRange, needsFullRead } from './range.js';
import { RangeCounts } from './range-counts.js';
import { Sequencer } from './sequencer.js';
import { storageError } from './storage-error.js';
import { deleteKeys, putKeys, txnTouchedKeys } from './touched-keys.js';
import { WatchHub } from './watch-hub.js';
import { WriteQueue } from './write-queue.js';
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
  /** Bytes of newest rows kept in memory for Gets (latest-cache.ts; default 64 MiB, 0: none). */
  readCacheBytes?: number;
  /** Rows deleted per compaction step (default 1,000). */
  compactBatchSize?: number;
  /** Bound on one compaction step, ms (see mvcc/compaction.ts; default 5,000). */
  compactTimeoutMs?: number;
  logger?: Logger;
  /**
   * Runs first in every write transaction and throws if this process may no longer write (leader fencing:
   * docs/architecture.md, "One writer"). Its failure fails the batch before any revision is allocated.
   */
  fence?: (tx: WriteTxn) => Promise<void>;
}

/** Default of StoreOptions.readCacheBytes. */
export const DEFAULT_READ_CACHE_BYTES = 64 * 1024 * 1024;

export class Store {
  readonly leases = new LeaseTable();
  hub!: WatchHub;
  clusterId = '0';
  memberId = '0';
  private seq!: Sequencer;
  private queue!: WriteQueue;
  private compaction!: Compaction;
  private lessor!: Lessor;
  /** Child mode: what a parent layer hands down (child-layer.ts). */
  child!: ChildLayer;
  private readonly cache: LatestCache;
  private readonly log: Logger;

  private constructor(
    readonly backend: Backend,
    private readonly opts: StoreOptions,
  ) {
    this.log = (opts.logger ?? rootLogger).child({ component: 'store' });
    this.cache = new LatestCache(opts.readCacheBytes ?? DEFAULT_READ_CACHE_BYTES);
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
    const compactRev = compact === undefined ? undefined : metaRevision(compact);
    this.hub = new WatchHub({
      backend: b,
      revision: this.seq.watermark,
      // etcd's compact revision is -1 until the first compaction
      compactRevision: compactRev ?? -1,
      ringEvents: this.opts.ringEvents,
      onError: (err) => this.log.warn('watch catch-up failed; retrying', { error: err }),
    });
    const header = (revision: number) => this.header(revision);
    this.queue = new WriteQueue({
      backend: b,
      seq: this.seq,
      leases: this.leases,
      hub: this.hub,
      header,
      cache: this.cache,
      maxBatch: this.opts.maxBatch ?? 512,
      fence: this.opts.fence,
      reloadAfterDoubt: () => this.reloadAfterDoubt(),
      ownRevisionGuard: () => this.child.refuseOwnWrite(),
      log: this.log,
    });
    this.compaction = new Compaction({
      backend: b,
      seq: this.seq,
      hub: this.hub,
      queue: this.queue,
      restored: compactRev,
      batchSize: this.opts.compactBatchSize,
      timeoutMs: this.opts.compactTimeoutMs,
      log: this.log,
    });
    this.child = new ChildLayer({
      backend: b,
      seq: this.seq,
      queue: this.queue,
      compaction: this.compaction,
      clusterId: () => this.clusterId,
      // a revert, a recovery or a migration step handed down changes rows without events
      changedWithoutEvents: () => this.cache.clear(),
      log: this.log,
    });
    await this.child.load();
    this.lessor = new Lessor({ leases: this.leases, queue: this.queue, header: () => this.header(), minLeaseTtl: this.opts.minLeaseTtl, log: this.log });
    this.leases.load(await b.leases(), await b.leasedKeys());
    storeMetrics.revision.set(this.seq.watermark);
    storeMetrics.compactRevision.set(this.compaction.revision);
    storeMetrics.leases.set(this.leases.size);
    this.lessor.start();
    this.log.info('store opened', {
      backend: b.description,
      revision: this.seq.watermark,
      compactRevision: this.compaction.revision,
      leases: this.leases.size,
      ...(this.child.parent ? { childOf: this.child.parent } : {}),
    });
  }

  /** After a failed write batch: lease and compaction state as the database holds them (see WriteQueue). */
  private async reloadAfterDoubt(): Promise<void> {
    this.cache.clear();
    const [leases, leasedKeys, compact] = await Promise.all([
      this.backend.leases(),
      this.backend.leasedKeys(),
      this.backend.getMeta(META.compactRevision),
    ]);
    this.leases.load(leases, leasedKeys);
    if (compact !== undefined) this.compaction.advance(metaRevision(compact));
  }

  /** The commit watermark: the revision reads and watches see. */
  get revision(): number {
    return this.seq.watermark;
  }

  get compactRevision(): number {
    return this.compaction.revision;
  }

  header(revision = this.seq.watermark): ResponseHeader {
    return { cluster_id: this.clusterId, member_id: this.memberId, revision, raft_term: 1 };
  }

  // ---- reads ----------------------------------------------------------------------------------------

  /** Validates a read revision against the watermark and the compaction revision. */
  private readRevision(requested: number): number {
    const head = this.seq.watermark;
    if (requested <= 0) return head;
    // a child holds only the revisions of its keys: above its newest, the state is that of its newest
    if (requested > head) {
      if (this.child.parent === undefined) throw errFutureRev();
      return head;
    }
    if (requested < this.compaction.revision) throw errCompacted();
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
    if (end === undefined && rev === this.seq.watermark && this.cache.enabled) return this.get(req, rev, header);
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
      throw storageError(err, this.log);
    }
  }

  /** A Range of one key at the watermark `rev`: from the read cache, or read and cached (latest-cache.ts). */
  private async get(req: RangeRequest, rev: number, header: ResponseHeader): Promise<RangeResponse> {
    let row = this.cache.get(req.key);
    if (row === undefined) {
      // taken in the same step as the watermark `rev`: a write published from now on keeps this read out
      const fill = this.cache.beginFill(req.key);
      let read: KeyRow | undefined;
      try {
        [read] = await this.backend.range({ start: req.key, revision: rev, limit: 0, keysOnly: false });
      } catch (err) {
        this.cache.endFill(fill, undefined, false);
        throw storageError(err, this.log);
      }
      this.cache.endFill(fill, read, true);
      row = read ?? null;
    }
    const rows = row ? [row] : [];
    return finishRange(req, rows, rows.length, header);
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

  // ---- writes (write-queue.ts) ------------------------------------------------------------------------

  put(req: PutRequest): Promise<PutResponse> {
    return this.queue.submit(false, (ctx) => applyPut(ctx, req), undefined, putKeys(req));
  }

  deleteRange(req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
    return this.queue.submit(false, (ctx) => applyDeleteRange(ctx, req), undefined, deleteKeys(req));
  }

  txn(req: TxnRequest): Promise<TxnResponse> {
    return this.queue.submit(false, (ctx) => applyTxn(ctx, req), undefined, txnTouchedKeys(req));
  }

  /**
   * Runs `fn` between two write batches, with every earlier write committed and nothing else in flight
   * (topology changes use it to swap the routing). What `fn` writes through `tx` commits together with the
   * revision high-water mark, so revisions stay unique even if a backend that held the newest ones is
   * dropped; `then` runs after that commit and before the next batch. When `fn` returns false nothing is
   * written and `then` does not run (errors thrown by `fn` count as storage failures).
   */
  async exclusive(fn: (tx: WriteTxn, watermark: number) => Promise<boolean>, then: () => void): Promise<boolean> {
    return this.queue.submit(true, async (ctx) => {
      if (!(await fn(ctx.tx, this.seq.watermark))) return false;
      await ctx.tx.setMeta(META.revisionHighWater, Buffer.from(String(this.seq.lastAllocated)));
      // a routing change reads keys from other databases from now on: nothing cached from the old routing stays
      ctx.afterCommit.push(() => this.cache.clear());
      ctx.afterCommit.push(then);
      return true;
    });
  }

  // ---- compaction (compaction.ts) ---------------------------------------------------------------------

  /** etcd Compact (see Compaction.compact); answers with the header at the watermark. */
  async compact(revision: number, opts: { physical?: boolean; batchSize?: number; timeoutMs?: number } = {}): Promise<ResponseHeader> {
    // a child is compacted by its parent, at the parent's revisions
    this.child.refuseOwnWrite();
    await this.compaction.compact(revision, opts);
    return this.header();
  }

  // ---- leases (lessor.ts) -----------------------------------------------------------------------------

  async leaseGrant(requestedId: string, ttl: number): Promise<{ id: string; ttl: number; header: ResponseHeader }> {
    // the parent's lessor owns the leases of a child's keys
    this.child.refuseOwnWrite();
    return this.lessor.grant(requestedId, ttl);
  }

  async leaseRevoke(leaseId: string): Promise<ResponseHeader> {
    this.child.refuseOwnWrite();
    return this.lessor.revoke(leaseId);
  }

  leaseKeepAlive(leaseId: string): Promise<{ ttl: number; header: ResponseHeader }> {
    return this.lessor.keepAlive(leaseId);
  }

  leaseTimeToLive(leaseId: string): { lease: LeaseState; remaining: number } {
    return this.lessor.timeToLive(leaseId);
  }

  // ---- status ---------------------------------------------------------------------------------------

  async dbSize(): Promise<number> {
    try {
      return await this.backend.sizeBytes();
    } catch (err) {
      throw storageError(err, this.log);
    }
  }

  /**
   * True when the default backend (the meta store) answers and writes can commit. A routed backend that is
   * down fails only the requests for its keys; reporting the whole server unready would take every other
   * key offline too. After a write batch failed for lack of storage (a full disk, a database refusing
   * writes), readiness stays false until a write commits again (see WriteQueue.writable).
   */
  async ready(): Promise<boolean> {
    try {
      await this.backend.getMeta(META.clusterId);
    } catch {
      return false;
    }
    return this.queue.writable();
  }

  /** Stops taking writes, lets queued ones finish, closes the backend. */
  async close(): Promise<void> {
    this.lessor.stop();
    await this.queue.close();
    await this.backend.close();
  }
}

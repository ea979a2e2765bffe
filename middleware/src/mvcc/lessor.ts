/**
 * etcd's lease operations over the store: grant, revoke (deleting every attached key at one revision),
 * keep-alive, time-to-live, and the timer that revokes leases as they expire. Grants and revokes are barriers
 * in the write queue, as they change what later requests validate against; the state they change is the
 * LeaseTable (leases.ts), updated once their transaction commits.
 */
import type { Logger } from '../log.js';
import type { ResponseHeader } from './api.js';
import { applyDeleteRange } from './apply.js';
import { EtcdError, errLeaseExists, errLeaseNotFound, errLeaseTTLTooLarge } from './errors.js';
import { MAX_LEASE_TTL, type LeaseState, type LeaseTable } from './leases.js';
import { storeMetrics } from './metrics.js';
import { randomId } from './random-id.js';
import type { WriteQueue } from './write-queue.js';

/**
 * etcd's smallest lease TTL with its default timing: 1.5 election timeouts (3 x 10 ticks / 2 of 100 ms),
 * rounded up to whole seconds. etcd grants smaller (and zero) TTLs as this.
 */
const ETCD_MIN_LEASE_TTL = 2;

export interface LessorOptions {
  leases: LeaseTable;
  queue: WriteQueue;
  /** The response header at the watermark. */
  header: () => ResponseHeader;
  /** Smallest lease TTL granted, seconds (default 2, etcd's). */
  minLeaseTtl?: number;
  log: Logger;
}

export class Lessor {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly minLeaseTtl: number;

  constructor(private readonly o: LessorOptions) {
    this.minLeaseTtl = o.minLeaseTtl ?? ETCD_MIN_LEASE_TTL;
  }

  async grant(requestedId: string, ttl: number): Promise<{ id: string; ttl: number; header: ResponseHeader }> {
    if (ttl > MAX_LEASE_TTL) throw errLeaseTTLTooLarge();
    const granted = Math.max(ttl, this.minLeaseTtl);
    const { leases } = this.o;
    return this.o.queue.submit(true, async (ctx) => {
      let leaseId = requestedId;
      if (leaseId === '0') {
        do leaseId = randomId();
        while (leases.has(leaseId));
      } else if (leases.has(leaseId)) {
        throw errLeaseExists();
      }
      const row = { id: leaseId, ttl: granted, expiresAt: Date.now() + granted * 1000 };
      await ctx.tx.putLease(row);
      ctx.afterCommit.push(() => {
        leases.add(row);
        storeMetrics.leases.set(leases.size);
        this.scheduleExpiry();
      });
      return { id: leaseId, ttl: granted, header: ctx.responseHeader() };
    });
  }

  /** Revokes a lease: every key attached is deleted at one revision (DELETE events carry prev_kv). */
  revoke(leaseId: string): Promise<ResponseHeader> {
    const { leases } = this.o;
    return this.o.queue.submit(true, async (ctx) => {
      const lease = leases.get(leaseId);
      if (!lease) throw errLeaseNotFound();
      const keys = [...lease.keys].map((k) => Buffer.from(k, 'latin1')).sort(Buffer.compare);
      await ctx.tx.deleteLease(leaseId);
      for (const key of keys) await applyDeleteRange(ctx, { key });
      ctx.afterCommit.push(() => {
        leases.remove(leaseId);
        storeMetrics.leases.set(leases.size);
      });
      return ctx.responseHeader();
    });
  }

  /** Renews a lease; TTL 0 when it does not exist (etcd answers keep-alives that way, not with an error). */
  async keepAlive(leaseId: string): Promise<{ ttl: number; header: ResponseHeader }> {
    const lease = this.o.leases.get(leaseId);
    if (!lease) return { ttl: 0, header: this.o.header() };
    const expiresAt = Date.now() + lease.ttl * 1000;
    await this.o.queue.submit(false, async (ctx) => {
      await ctx.tx.putLease({ id: lease.id, ttl: lease.ttl, expiresAt });
      ctx.afterCommit.push(() => {
        lease.expiresAt = Math.max(lease.expiresAt, expiresAt);
      });
    });
    return { ttl: lease.ttl, header: this.o.header() };
  }

  timeToLive(leaseId: string): { lease: LeaseState; remaining: number } {
    const lease = this.o.leases.get(leaseId);
    if (!lease) throw errLeaseNotFound();
    return { lease, remaining: Math.max(0, Math.floor((lease.expiresAt - Date.now()) / 1000)) };
  }

  /** Arms the expiry timer for the earliest lease (call once the lease table is loaded). */
  start(): void {
    this.scheduleExpiry();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private scheduleExpiry(): void {
    if (this.stopped) return;
    const next = this.o.leases.nextExpiry();
    clearTimeout(this.timer);
    if (next === undefined) return;
    const delay = Math.min(Math.max(next - Date.now(), 10), 1000);
    this.timer = setTimeout(() => void this.expire(), delay);
    this.timer.unref();
  }

  private async expire(): Promise<void> {
    for (const lease of this.o.leases.expired(Date.now())) {
      try {
        await this.revoke(lease.id);
        storeMetrics.expiredLeases.inc();
      } catch (err) {
        if (!(err instanceof EtcdError && err.kind === 'lease_not_found')) {
          this.o.log.warn('lease expiry failed; retrying', { lease: lease.id, error: err });
        }
      }
    }
    this.scheduleExpiry();
  }
}

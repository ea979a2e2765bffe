/**
 * Leader election on a coordination.k8s.io/v1 Lease, with client-go's rules: take the Lease when it is free
 * (no holder) or its holder has not renewed it for leaseDurationSeconds as observed by this process's own
 * clock (no clock skew between nodes matters); renew every retry period; step down when renewals have failed
 * for the renew deadline (shorter than the lease, so this process stops writing before anyone else may
 * start); hand the Lease back on shutdown so a standby takes over at once. Updates are optimistic
 * (resourceVersion), so two candidates can never both win.
 */
import type { Logger } from '../log.js';
import { sleep } from './backoff.js';
import { isConflict, isNotFound, type KubeClient, type KubeObject } from './kube-client.js';
import { leasePath, leasesPath } from './kube-paths.js';

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  /** Unique per process (pod name + random suffix). */
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log: Logger;
  onStartedLeading: () => void;
  /** Called when leadership is lost or given up; the caller must stop writing at once. */
  onStoppedLeading: () => void;
}

interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number;
}

interface Lease extends KubeObject {
  spec?: LeaseSpec;
}

/** MicroTime as the API server requires it: RFC 3339 with exactly six fractional digits. */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class KubeLeaseElector {
  private leading = false;
  private lastRenewed = 0;
  private observed?: { record: string; at: number };
  private lease?: Lease;
  /** The last reason the Lease could not be taken, logged once per distinct reason so problems are seen. */
  private lastProblem?: string;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;

  constructor(private readonly opts: LeaderElectionOptions) {
    this.leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    if (this.renewDeadlineMs >= this.leaseDurationMs) {
      throw new Error('leader election: the renew deadline must be shorter than the lease duration');
    }
  }

  /**
   * True while this process holds the Lease and renewed it within the renew deadline. Checked before every
   * write, so a leader that cannot reach the API server stops writing even before the renew loop notices.
   */
  isLeader(): boolean {
    return this.leading && Date.now() - this.lastRenewed < this.renewDeadlineMs;
  }

  get identity(): string {
    return this.opts.identity;
  }

  /** Campaigns, leads, and campaigns again after losing the Lease, until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const { log } = this.opts;
    while (!signal.aborted) {
      // Campaign.
      while (!signal.aborted && !(await this.tryAcquireOrRenew())) await sleep(this.retryPeriodMs, signal);
      if (signal.aborted) break;
      this.leading = true;
      log.info('became leader', { lease: `${this.opts.namespace}/${this.opts.name}`, identity: this.opts.identity });
      this.opts.onStartedLeading();
      // Lead.
      while (!signal.aborted) {
        await sleep(this.retryPeriodMs, signal);
        if (signal.aborted) break;
        if (await this.tryAcquireOrRenew()) continue;
        if (Date.now() - this.lastRenewed >= this.renewDeadlineMs) {
          log.warn('lost leadership: could not renew the lease within the renew deadline', {
            lease: `${this.opts.namespace}/${this.opts.name}`,
            renewDeadlineMs: this.renewDeadlineMs,
          });
          break;
        }
      }
      if (this.leading) {
        this.leading = false;
        this.opts.onStoppedLeading();
      }
    }
  }

  /** Gives the Lease up (call after stopping all writers) so another replica can take over immediately. */
  async release(): Promise<void> {
    this.leading = false;
    // The last Lease we wrote says we hold it; the PUT carries its resourceVersion, so if anyone took it
    // since, the release fails harmlessly instead of overwriting them.
    const lease = this.lease;
    if (!lease || lease.spec?.holderIdentity !== this.opts.identity) return;
    this.lease = undefined;
    const now = microTime(new Date());
    try {
      await this.opts.client.request('PUT', leasePath(this.opts.namespace, this.opts.name), {
        body: {
          ...lease,
          spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, acquireTime: now, renewTime: now },
        },
      });
      this.opts.log.info('released the lease', { lease: `${this.opts.namespace}/${this.opts.name}` });
    } catch (e) {
      this.opts.log.warn('could not release the lease; another replica takes over when it expires', { error: e });
    }
  }

  private problem(what: string, error: unknown): void {
    const text = `${what}: ${(error as Error).message}`;
    if (text === this.lastProblem) return;
    this.lastProblem = text;
    this.opts.log.warn(what, { lease: `${this.opts.namespace}/${this.opts.name}`, error });
  }

  /** One attempt to take or renew the Lease; true when this process holds it afterwards. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const { client, namespace, name, identity } = this.opts;
    const now = new Date();
    const durationSeconds = Math.max(1, Math.ceil(this.leaseDurationMs / 1000));
    let current: Lease;
    try {
      current = await client.request<Lease>('GET', leasePath(namespace, name));
    } catch (e) {
      if (!isNotFound(e)) {
        this.problem('cannot read the lease', e);
        return false;
      }
      try {
        this.lease = await client.request<Lease>('POST', leasesPath(namespace), {
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: durationSeconds,
              acquireTime: microTime(now),
              renewTime: microTime(now),
              leaseTransitions: 0,
            },
          },
        });
        this.lastRenewed = now.getTime(); // when the renewal was sent: conservative
        this.lastProblem = undefined;
        return true;
      } catch (err) {
        this.problem('cannot create the lease', err);
        return false;
      }
    }

    const spec = current.spec ?? {};
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, current.metadata.resourceVersion]);
    if (this.observed?.record !== record) this.observed = { record, at: Date.now() };
    const holder = spec.holderIdentity ?? '';
    const heldByMe = holder === identity;
    const ttlMs = (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (holder && !heldByMe && this.observed.at + ttlMs > Date.now()) return false;

    try {
      this.lease = await client.request<Lease>('PUT', leasePath(namespace, name), {
        body: {
          ...current,
          spec: {
            ...spec,
            holderIdentity: identity,
            leaseDurationSeconds: durationSeconds,
            acquireTime: heldByMe ? spec.acquireTime : microTime(now),
            renewTime: microTime(now),
            leaseTransitions: heldByMe ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
          },
        },
      });
      this.lastRenewed = now.getTime(); // when the renewal was sent: conservative
      this.lastProblem = undefined;
      return true;
    } catch (e) {
      if (!isConflict(e)) this.problem('cannot update the lease', e);
      return false;
    }
  }
}

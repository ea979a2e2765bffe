/**
 * Leader election for several middleware replicas on one default backend (docs/architecture.md, "One writer"):
 * only the leader opens the store and allocates revisions; standbys wait. The lease lives in the meta
 * table of the default backend itself, so it needs nothing but the database the replicas already share.
 *
 * - The leader renews by bumping a counter; a standby takes over when the lease row has not changed for a
 *   whole lease duration (measured on the standby's own clock, so clocks need not agree), or at once when
 *   the leader released it on shutdown.
 * - Fencing: every write batch of the leader first locks the lease row and checks it still holds it. A
 *   leader that was paused or cut off past its lease finds a new holder there and its batch fails: it
 *   never commits a revision next to the new leader's.
 * - Hand-over (rolling updates): standbys register in a candidate registry (candidates.ts) with their pod
 *   template. A leader that sees a live standby of another template that appeared after it stops serving
 *   and hands the lease to that standby by name; other standbys leave a named successor alone for a lease
 *   duration. So the new pod of a rollout becomes ready while the old one still serves.
 */
import { BackendUnavailableError, inWriteTxn, type Backend, type WriteTxn } from '../backends/backend.js';
import { META } from '../backends/meta.js';
import { logger as rootLogger, type Logger } from '../log.js';
import { leaderMetrics } from './metrics.js';
import { CandidateWatch, META_LEADER_CANDIDATES, META_LEADER_SUCCESSOR, parseCandidates, refreshCandidate } from './candidates.js';

/**
 * Meta values of the lease: `<epoch>/<identity>` of the holder (`<epoch>/` once released, '' never taken),
 * and the renew counter. A release keeps the epoch: the next holder's token is always new, so a stalled
 * process of the same identity that still holds an older token is fenced, whatever happened in between.
 */
export const META_LEADER = META.leader;
export const META_LEADER_RENEWED = META.leaderRenewed;

/** The holder's identity in a lease value ('' when released or never taken). */
function holderOf(lease: string): string {
  const slash = lease.indexOf('/');
  return slash < 0 ? lease : lease.slice(slash + 1);
}

/** The lease value after `token`'s holder let it go: same epoch, nobody holding it. */
function releasedFrom(token: string): Buffer {
  return Buffer.from(`${token.split('/')[0]}/`);
}

/** This process was deposed: a batch found another holder in the lease row. */
export class FencedError extends BackendUnavailableError {
  constructor(holder: string) {
    super(`this middleware is no longer the leader (the lease is held by "${holderOf(holder) ? holder : 'nobody'}"); retry against the current leader`);
    this.name = 'FencedError';
  }
}

export interface LeaderElectionOptions {
  /** The default backend, opened; the election uses its own connections to it. */
  backend: Backend;
  /** Unique per replica (the pod name). */
  identity: string;
  /** How long a lease lasts without renewal before a standby takes over. */
  leaseDurationMs: number;
  /** How often the leader renews and standbys look. */
  renewIntervalMs: number;
  /** This replica's pod template (`pod-template-hash`); without it the replica neither hands over nor is handed the lease. */
  template?: string;
  logger?: Logger;
}

const text = (v: Buffer | undefined) => v?.toString('utf8') ?? '';
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    // the listener goes with the timer: a standby sleeps once per look, for as long as it stands by
    const onAbort = () => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

export class LeaderElection {
  private token = '';
  private lastRenewed = 0;
  private renewer: NodeJS.Timeout | undefined;
  /** Bumped when renewing starts or stops: a renewal of an earlier run neither writes nor re-arms. */
  private renewals = 0;
  /** The renewal in progress, so stopping can wait for it before the caller closes the backend. */
  private renewal: Promise<void> | undefined;
  private lostReported = false;
  private onLost: (reason: string) => void = () => {};
  /** Order of first appearance in the candidate registry (0 until registered). */
  private order = 0;
  private successorReported = false;
  private readonly log: Logger;

  constructor(private readonly opts: LeaderElectionOptions) {
    this.log = (opts.logger ?? rootLogger).child({ component: 'leader-election', identity: opts.identity });
  }

  get isLeader(): boolean {
    return this.token !== '' && !this.lostReported;
  }

  /** Waits until this process holds the lease (resolves false if `signal` aborts first). */
  async acquire(signal?: AbortSignal): Promise<boolean> {
    const { backend, leaseDurationMs, renewIntervalMs } = this.opts;
    let observed: string | undefined;
    let observedAt = 0;
    let waitingLogged = false;
    while (!signal?.aborted) {
      try {
        await this.register();
        const [holder, renewed, successor] = await Promise.all([
          backend.getMeta(META_LEADER),
          backend.getMeta(META_LEADER_RENEWED),
          backend.getMeta(META_LEADER_SUCCESSOR),
        ]);
        const seen = `${text(holder)}|${text(renewed)}|${text(successor)}`;
        if (seen !== observed) {
          observed = seen;
          observedAt = Date.now();
        }
        // a lease handed to another standby is as good as held by it, until it stood still for a lease duration
        const free = holderOf(text(holder)) === '' && (text(successor) === '' || text(successor) === this.opts.identity);
        if (free || Date.now() - observedAt >= leaseDurationMs) {
          if (await this.takeOver(text(holder), text(renewed), text(successor))) return true;
        } else if (!waitingLogged) {
          this.log.info('standing by: another replica holds the lease', { holder: holderOf(text(holder)) ? text(holder) : `handed to ${text(successor)}` });
          waitingLogged = true;
        }
      } catch (err) {
        this.log.warn('cannot read the leader lease; retrying', { error: err });
      }
      await sleep(renewIntervalMs, signal);
    }
    return false;
  }

  /** Records this replica (and its pod template) in the candidate registry; refreshes it on every look. */
  private async register(): Promise<void> {
    const template = this.opts.template ?? '';
    this.order = await inWriteTxn(this.opts.backend, async (tx) => {
      const { registry, order } = refreshCandidate(parseCandidates(await tx.lockMeta(META_LEADER_CANDIDATES)), this.opts.identity, template, Date.now());
      await tx.setMeta(META_LEADER_CANDIDATES, Buffer.from(JSON.stringify(registry)));
      return order;
    });
  }

  /** Takes the lease if it is still exactly what was observed. */
  private async takeOver(holder: string, renewed: string, successor: string): Promise<boolean> {
    const token = await inWriteTxn(this.opts.backend, async (tx) => {
      const current = text(await tx.lockMeta(META_LEADER));
      if (current !== holder || text(await tx.lockMeta(META_LEADER_RENEWED)) !== renewed) return undefined;
      const handed = text(await tx.lockMeta(META_LEADER_SUCCESSOR));
      if (handed !== successor) return undefined;
      const epoch = (Number.parseInt(current.split('/')[0] ?? '', 10) || 0) + 1;
      const mine = `${epoch}/${this.opts.identity}`;
      await tx.setMeta(META_LEADER, Buffer.from(mine));
      await tx.setMeta(META_LEADER_RENEWED, Buffer.from('0'));
      if (handed) await tx.setMeta(META_LEADER_SUCCESSOR, Buffer.alloc(0));
      return mine;
    });
    if (!token) return false;
    this.token = token;
    this.lastRenewed = Date.now();
    leaderMetrics.isLeader.set(1);
    leaderMetrics.transitions.inc();
    this.log.info('acquired the leader lease', { lease: token, previous: holder || 'none' });
    return true;
  }

  /**
   * Renews every interval; `onLost` is called once when the lease is lost or cannot be renewed in time.
   * `onSuccessor` is called once when a newer standby of another pod template is waiting (a rolling update):
   * the caller stops serving, then calls `handOver`.
   */
  startRenewing(onLost: (reason: string) => void, onSuccessor?: (successor: { identity: string; template: string }) => void): void {
    this.onLost = onLost;
    const watch = new CandidateWatch(this.opts.leaseDurationMs);
    const run = ++this.renewals;
    // stop(), release() or handOver() may come while a renewal awaits the backend: it must then end quietly
    const running = () => run === this.renewals && !this.lostReported;
    const tick = async () => {
      let renewed = 0;
      try {
        await inWriteTxn(this.opts.backend, async (tx) => {
          const holder = text(await tx.lockMeta(META_LEADER));
          if (holder !== this.token) throw new FencedError(holder);
          if (!running()) return;
          renewed = Number(text(await tx.lockMeta(META_LEADER_RENEWED))) + 1;
          await tx.setMeta(META_LEADER_RENEWED, Buffer.from(String(renewed)));
        });
        if (!running()) return;
        this.lastRenewed = Date.now();
        if (onSuccessor && this.opts.template && !this.successorReported) {
          const registry = parseCandidates(await this.opts.backend.getMeta(META_LEADER_CANDIDATES));
          const next = watch.successor(registry, { identity: this.opts.identity, template: this.opts.template, order: this.order }, Date.now());
          if (next && running()) {
            this.successorReported = true;
            this.log.info('a newer replica of another pod template stands by: handing the lease over to it', { successor: next.identity, template: next.template, ours: this.opts.template });
            onSuccessor(next);
          }
        }
      } catch (err) {
        // once stopped, a failure says nothing about the lease (the backend may be closing)
        if (!running()) return;
        if (err instanceof FencedError) return this.lost(err.message);
        // stop before a standby may take over: it waits a whole lease duration after the last renewal
        if (Date.now() - this.lastRenewed >= this.opts.leaseDurationMs - this.opts.renewIntervalMs) {
          return this.lost(`the lease could not be renewed for ${Date.now() - this.lastRenewed} ms: ${(err as Error).message}`);
        }
        this.log.warn('lease renewal failed; retrying', { error: err });
      }
      if (running()) arm();
    };
    const arm = () => {
      this.renewer = setTimeout(() => {
        const renewal = tick().finally(() => {
          if (this.renewal === renewal) this.renewal = undefined;
        });
        this.renewal = renewal;
      }, this.opts.renewIntervalMs);
    };
    arm();
  }

  /** The store's fence: inside every write batch, the lease must still be ours. */
  readonly fence = async (tx: WriteTxn): Promise<void> => {
    const holder = text(await tx.lockMeta(META_LEADER));
    if (holder !== this.token) {
      const err = new FencedError(holder);
      this.lost(err.message);
      throw err;
    }
  };

  /** Stops renewing and hands the lease over at once (graceful shutdown). */
  async release(): Promise<void> {
    await this.stop();
    if (!this.token || this.lostReported) return;
    try {
      await inWriteTxn(this.opts.backend, async (tx) => {
        if (text(await tx.lockMeta(META_LEADER)) === this.token) await tx.setMeta(META_LEADER, releasedFrom(this.token));
      });
      this.log.info('released the leader lease', { lease: this.token });
    } catch (err) {
      this.log.warn('could not release the leader lease; a standby takes over when it expires', { error: err });
    }
    this.token = '';
    leaderMetrics.isLeader.set(0);
  }

  /**
   * Stops renewing and gives the lease to `successor` by name (call once this process serves no more): the
   * lease is free for it at once, other standbys wait a lease duration for it to take it.
   */
  async handOver(successor: string): Promise<void> {
    await this.stop();
    if (!this.token || this.lostReported) return;
    try {
      await inWriteTxn(this.opts.backend, async (tx) => {
        if (text(await tx.lockMeta(META_LEADER)) !== this.token) return;
        await tx.setMeta(META_LEADER, releasedFrom(this.token));
        await tx.setMeta(META_LEADER_SUCCESSOR, Buffer.from(successor));
      });
      this.log.info('handed the leader lease over', { lease: this.token, successor });
    } catch (err) {
      this.log.warn('could not hand the leader lease over; a standby takes over when it expires', { error: err });
    }
    this.token = '';
    leaderMetrics.isLeader.set(0);
  }

  /**
   * Stops renewing, and waits for a renewal in progress to end (at most a lease duration, after which the
   * lease is a standby's anyway), so the backend may be closed afterwards.
   */
  async stop(): Promise<void> {
    this.renewals++;
    clearTimeout(this.renewer);
    const renewal = this.renewal;
    if (!renewal) return;
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([renewal.catch(() => undefined), new Promise<void>((resolve) => (bound = setTimeout(resolve, this.opts.leaseDurationMs)))]);
    clearTimeout(bound);
  }

  private lost(reason: string): void {
    if (this.lostReported) return;
    this.lostReported = true;
    clearTimeout(this.renewer);
    leaderMetrics.isLeader.set(0);
    this.log.error('lost the leader lease', { reason });
    this.onLost(reason);
  }
}

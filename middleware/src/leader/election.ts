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
 */
import { BackendUnavailableError, inWriteTxn, type Backend, type WriteTxn } from '../backends/backend.js';
import { META } from '../backends/meta.js';
import { logger as rootLogger, type Logger } from '../log.js';
import { leaderMetrics } from './metrics.js';

/** Meta values of the lease: `<epoch>/<identity>` of the holder ('' when released), and the renew counter. */
export const META_LEADER = META.leader;
export const META_LEADER_RENEWED = META.leaderRenewed;

/** This process was deposed: a batch found another holder in the lease row. */
export class FencedError extends BackendUnavailableError {
  constructor(holder: string) {
    super(`this middleware is no longer the leader (the lease is held by "${holder || 'nobody'}"); retry against the current leader`);
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
  logger?: Logger;
}

const text = (v: Buffer | undefined) => v?.toString('utf8') ?? '';
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });

export class LeaderElection {
  private token = '';
  private lastRenewed = 0;
  private renewer: NodeJS.Timeout | undefined;
  private lostReported = false;
  private onLost: (reason: string) => void = () => {};
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
        const [holder, renewed] = await Promise.all([backend.getMeta(META_LEADER), backend.getMeta(META_LEADER_RENEWED)]);
        const seen = `${text(holder)}|${text(renewed)}`;
        if (seen !== observed) {
          observed = seen;
          observedAt = Date.now();
        }
        if (text(holder) === '' || Date.now() - observedAt >= leaseDurationMs) {
          if (await this.takeOver(text(holder), text(renewed))) return true;
        } else if (!waitingLogged) {
          this.log.info('standing by: another replica holds the lease', { holder: text(holder) });
          waitingLogged = true;
        }
      } catch (err) {
        this.log.warn('cannot read the leader lease; retrying', { error: err });
      }
      await sleep(renewIntervalMs, signal);
    }
    return false;
  }

  /** Takes the lease if it is still exactly what was observed. */
  private async takeOver(holder: string, renewed: string): Promise<boolean> {
    const token = await inWriteTxn(this.opts.backend, async (tx) => {
      const current = text(await tx.lockMeta(META_LEADER));
      if (current !== holder || text(await tx.lockMeta(META_LEADER_RENEWED)) !== renewed) return undefined;
      const epoch = (Number.parseInt(current.split('/')[0] ?? '', 10) || 0) + 1;
      const mine = `${epoch}/${this.opts.identity}`;
      await tx.setMeta(META_LEADER, Buffer.from(mine));
      await tx.setMeta(META_LEADER_RENEWED, Buffer.from('0'));
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

  /** Renews every interval; `onLost` is called once when the lease is lost or cannot be renewed in time. */
  startRenewing(onLost: (reason: string) => void): void {
    this.onLost = onLost;
    const tick = async () => {
      let renewed = 0;
      try {
        await inWriteTxn(this.opts.backend, async (tx) => {
          const holder = text(await tx.lockMeta(META_LEADER));
          if (holder !== this.token) throw new FencedError(holder);
          renewed = Number(text(await tx.lockMeta(META_LEADER_RENEWED))) + 1;
          await tx.setMeta(META_LEADER_RENEWED, Buffer.from(String(renewed)));
        });
        this.lastRenewed = Date.now();
      } catch (err) {
        if (err instanceof FencedError) return this.lost(err.message);
        // stop before a standby may take over: it waits a whole lease duration after the last renewal
        if (Date.now() - this.lastRenewed >= this.opts.leaseDurationMs - this.opts.renewIntervalMs) {
          return this.lost(`the lease could not be renewed for ${Date.now() - this.lastRenewed} ms: ${(err as Error).message}`);
        }
        this.log.warn('lease renewal failed; retrying', { error: err });
      }
      if (!this.lostReported) this.renewer = setTimeout(() => void tick(), this.opts.renewIntervalMs);
    };
    this.renewer = setTimeout(() => void tick(), this.opts.renewIntervalMs);
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
    clearTimeout(this.renewer);
    if (!this.token || this.lostReported) return;
    try {
      await inWriteTxn(this.opts.backend, async (tx) => {
        if (text(await tx.lockMeta(META_LEADER)) === this.token) await tx.setMeta(META_LEADER, Buffer.alloc(0));
      });
      this.log.info('released the leader lease', { lease: this.token });
    } catch (err) {
      this.log.warn('could not release the leader lease; a standby takes over when it expires', { error: err });
    }
    this.token = '';
    leaderMetrics.isLeader.set(0);
  }

  stop(): void {
    clearTimeout(this.renewer);
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

/**
 * Tries a refused topology again when the refusal may pass by itself: a database of a new rule that could
 * not be opened (not created yet, its Service not ready, a network blip). Topology sources deliver a
 * document only when its content changes, so without this a rule whose database came up a minute later
 * would stay refused until someone edited the topology. Refusals that only a change of the topology can
 * lift (keys that would move) are not retried: each try would scan every key again.
 */
import { Counter } from 'prom-client';
import type { Logger } from '../log.js';
import { registry } from '../metrics.js';
import { TopologyRefusedError } from './topology-applier.js';

export const topologyRetryMetrics = {
  retries: new Counter({
    name: 'harikube_topology_apply_retries_total',
    help: 'Re-reads of the topology source after a refusal that may pass by itself (a database that could not be opened).',
    registers: [registry],
  }),
};

export interface RetryOptions {
  /** First retry after this many ms; doubles on each refusal. */
  baseMs: number;
  /** Longest wait between two retries. */
  maxMs: number;
}

export const DEFAULT_RETRY: RetryOptions = { baseMs: 5_000, maxMs: 300_000 };

/** A refusal worth retrying: no key would move (the applier names moves when there are any). */
export function mayPassByItself(err: unknown): boolean {
  return err instanceof TopologyRefusedError && err.moves.length === 0;
}

/** Schedules `reload()` with exponential backoff while the same kind of refusal repeats. */
export class TopologyRetry {
  private timer?: NodeJS.Timeout;
  private attempt = 0;
  private stopped = false;

  constructor(
    private readonly reload: () => Promise<void>,
    private readonly log: Logger,
    private readonly source: string,
    private readonly opts: RetryOptions = DEFAULT_RETRY,
  ) {}

  /** A document was refused: retry later if the refusal may pass by itself, else stop retrying. */
  refused(err: Error): void {
    if (!mayPassByItself(err)) return this.reset();
    if (this.stopped) return;
    const delayMs = Math.min(this.opts.maxMs, this.opts.baseMs * 2 ** this.attempt);
    this.attempt++;
    clearTimeout(this.timer);
    this.log.warn('topology will be read and applied again', { source: this.source, retryInMs: delayMs, attempt: this.attempt });
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.stopped) return;
      topologyRetryMetrics.retries.inc();
      // a failure of the re-read itself arrives through the source's onError, like any other reading
      this.reload().catch((e: unknown) => this.log.warn('re-reading the topology failed', { source: this.source, error: (e as Error).message }));
    }, delayMs);
    this.timer.unref();
  }

  /** Applied, unchanged, or a failure a retry cannot fix (the source reports the next change by itself). */
  reset(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.attempt = 0;
  }

  stop(): void {
    this.stopped = true;
    this.reset();
  }
}

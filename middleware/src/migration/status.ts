/**
 * What a migration reports (GET /migrations on the metrics port; `harikube migrate status` reads it): one
 * entry per source backend, plus the ones emptied since the process started.
 */

export type SourcePhase = 'counting' | 'moving' | 'verifying' | 'done';

export interface SourceStatus {
  /** Its rule name in the topology ("" is the default backend), or "retired: <database>" for a removed rule. */
  source: string;
  /** The database (credentials redacted). */
  description: string;
  /** The rule name a retired source had (its rule was removed or pointed elsewhere). */
  rule?: string;
  /** Route names of the backends its keys go to, as of the last count ("" is the default backend). */
  targets?: string[];
  /** Global revision at which the topology change made it a source. */
  since: number;
  phase: SourcePhase;
  /** Keys to move found by the last count (tombstone-only keys included). */
  keysTotal: number;
  keysMoved: number;
  /** Moved keys per second over the current pass (0 before the first batch). */
  keysPerSecond: number;
  /** Seconds to go at that rate, when known. */
  etaSeconds?: number;
  /** Failed steps so far (each retried) and the last failure. */
  errors: number;
  lastError?: string;
  /** ms since the epoch. */
  startedAt: number;
  finishedAt?: number;
}

export interface MigrationStatus {
  /** True while some backend holds keys the topology routes elsewhere. */
  active: boolean;
  /** The mover's limit, keys per second (0: none). */
  rateLimit: number;
  /** Where the limit comes from: the topology in effect (`migration.keysPerSecond`) or `--migration-rate`. */
  rateLimitFrom: 'topology' | 'flag';
  sources: SourceStatus[];
}

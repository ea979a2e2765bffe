/**
 * Writes the apply report of a `secret://` topology (format: topology/apply-report.ts) into the middleware's
 * own store, where the API server serves it as a ConfigMap next to the Secret. Writes only when the report
 * changes; a failed write (the database is down) is retried until it succeeds or a newer report replaces it.
 *
 * While keys move for a routing change in effect (online migration), the report says so (`Migrating`, with
 * the progress and the rules involved), so the operator shows the TopologyConfigs of those rules Migrating;
 * the mover's changes update it: at once when the migration starts, ends or involves other rules, at most
 * every PROGRESS_MS for progress alone (each write is a ConfigMap update the operator reconciles).
 */
import type { Logger } from '../log.js';
import type { Store } from '../mvcc/store.js';
import { migrationSummary, rulesInvolved } from '../migration/describe.js';
import type { MigrationStatus } from '../migration/status.js';
import {
  REPORT_API_VERSION,
  reportName,
  reportObject,
  type ApplyReport,
  type ReportedMigration,
  type SecretReadInfo,
} from '../topology/apply-report.js';

const RETRY_MS = 5000;
/** Least time between two reports that differ only in a migration's progress. */
const PROGRESS_MS = 15_000;
/**
 * How long a report waits for the mover to count what a new migration moves (and so which rules it
 * involves) before it is written naming none (every document of the reading then counts as migrating).
 */
const COUNT_WAIT_MS = 5000;

const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

/** The migration the report follows (the server's Mover). */
export interface MigrationFeed {
  status(): MigrationStatus;
  onChange(listener: (status: MigrationStatus) => void): () => void;
}

export class TopologyReporter {
  readonly key: Buffer;
  private report: ApplyReport;
  private written = '';
  private writing: Promise<void> = Promise.resolve();
  private timer?: NodeJS.Timeout;
  private timerDue = 0;
  private stopped = false;
  private readonly unsubscribe?: () => void;

  constructor(
    private readonly store: Store,
    private readonly namespace: string,
    private readonly secretName: string,
    private readonly log: Logger,
    private readonly migration?: MigrationFeed,
  ) {
    this.key = Buffer.from(`/registry/configmaps/${namespace}/${reportName(secretName, store.clusterId)}`);
    this.report = { apiVersion: REPORT_API_VERSION, middleware: store.clusterId, secret: `${namespace}/${secretName}`, state: 'Applied' };
    this.unsubscribe = migration?.onChange((status) => this.migrationChanged(status));
  }

  /** The Secret content `info` is in effect. */
  applied(info: SecretReadInfo): Promise<void> {
    this.report = { ...this.report, state: 'Applied', applied: { revision: info.revision, documents: info.documents, at: now() } };
    delete this.report.refused;
    delete this.report.migrating;
    this.follow(this.migration?.status());
    // a migration that has not counted its keys yet names no rules: give the count a moment first
    const migrating = this.report.migrating as ReportedMigration | undefined;
    if (migrating && migrating.rules === undefined) {
      this.schedule(COUNT_WAIT_MS);
      return Promise.resolve();
    }
    return this.flush();
  }

  /** The Secret content `info` was refused; what was applied before stays in effect (and may still be migrating). */
  refused(info: SecretReadInfo, reason: string, rules: string[]): Promise<void> {
    this.report = { ...this.report, state: 'Refused', refused: { revision: info.revision, documents: info.documents, at: now(), reason, rules } };
    return this.flush();
  }

  stop(): void {
    this.stopped = true;
    this.unsubscribe?.();
    clearTimeout(this.timer);
  }

  /** The mover changed something: write at once what changes a TopologyConfig's state, progress now and then. */
  private migrationChanged(status: MigrationStatus): void {
    if (this.stopped) return;
    const change = this.follow(status);
    if (change === 'state') void this.flush().catch(() => undefined);
    else if (change === 'progress') this.schedule(PROGRESS_MS);
  }

  /** Puts the migration in `status` into the report; says what kind of change that is. */
  private follow(status: MigrationStatus | undefined): 'state' | 'progress' | 'none' {
    const applied = this.report.applied;
    // nothing of this Secret is in effect yet: a migration from before is not about it
    if (!applied) return 'none';
    const before = this.report.migrating;
    if (!status?.active) {
      if (!before) return 'none';
      delete this.report.migrating;
      if (this.report.state === 'Migrating') this.report.state = 'Applied';
      return 'state';
    }
    const rules = rulesInvolved(status);
    const next: ReportedMigration = { revision: applied.revision, documents: applied.documents, at: now(), progress: migrationSummary(status), ...(rules ? { rules } : {}) };
    this.report.migrating = next;
    if (this.report.state === 'Applied') this.report.state = 'Migrating';
    if (!before || JSON.stringify(before.rules) !== JSON.stringify(next.rules) || before.revision !== next.revision) return 'state';
    return before.progress === next.progress ? 'none' : 'progress';
  }

  /** A write within `ms` (an earlier one that is due stays). */
  private schedule(ms: number): void {
    if (this.stopped) return;
    const due = Date.now() + ms;
    if (this.timer && this.timerDue <= due) return;
    clearTimeout(this.timer);
    this.timerDue = due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush().catch(() => undefined);
    }, ms);
    this.timer.unref();
  }

  private flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.writing = this.writing.then(() => this.write());
    return this.writing;
  }

  private async write(): Promise<void> {
    if (this.stopped) return;
    // `at` changes on every call; an otherwise equal report is not written again
    const comparable = JSON.stringify({
      ...this.report,
      applied: strip(this.report.applied),
      refused: strip(this.report.refused),
      migrating: strip(this.report.migrating),
    });
    if (comparable === this.written) return;
    try {
      const current = await this.store.range({ key: this.key });
      const createdAt = creationOf(current.kvs[0]?.value) ?? now();
      const value = Buffer.from(JSON.stringify(reportObject(this.report, this.namespace, this.secretName, createdAt)));
      await this.store.put({ key: this.key, value });
      this.written = comparable;
      this.log.info('topology apply report written', {
        report: this.key.toString(),
        state: this.report.state,
        ...(this.report.migrating ? { migrating: this.report.migrating.progress } : {}),
      });
    } catch (e) {
      this.log.warn('cannot write the topology apply report; retrying', { report: this.key.toString(), error: (e as Error).message, retryInMs: RETRY_MS });
      this.schedule(RETRY_MS);
    }
  }
}

function strip<T extends { at: string }>(x: T | undefined): Omit<T, 'at'> | undefined {
  if (!x) return undefined;
  const { at: _at, ...rest } = x;
  return rest;
}

/** creationTimestamp of a report stored before (as JSON by us; an object rewritten by the API server is protobuf). */
function creationOf(value: Buffer | undefined): string | undefined {
  if (!value || value[0] !== 0x7b) return undefined;
  try {
    const t = (JSON.parse(value.toString('utf8')) as { metadata?: { creationTimestamp?: unknown } }).metadata?.creationTimestamp;
    return typeof t === 'string' ? t : undefined;
  } catch {
    return undefined;
  }
}

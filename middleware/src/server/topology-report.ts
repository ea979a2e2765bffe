/**
 * Writes the apply report of a `secret://` topology (format: topology/apply-report.ts) into the middleware's
 * own store, where the API server serves it as a ConfigMap next to the Secret. Writes only when the report
 * changes; a failed write (the database is down) is retried until it succeeds or a newer report replaces it.
 */
import type { Logger } from '../log.js';
import type { Store } from '../mvcc/store.js';
import {
  REPORT_API_VERSION,
  reportName,
  reportObject,
  type ApplyReport,
  type SecretReadInfo,
} from '../topology/apply-report.js';

const RETRY_MS = 5000;

const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

export class TopologyReporter {
  readonly key: Buffer;
  private report: ApplyReport;
  private written = '';
  private writing: Promise<void> = Promise.resolve();
  private retry?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly namespace: string,
    private readonly secretName: string,
    private readonly log: Logger,
  ) {
    this.key = Buffer.from(`/registry/configmaps/${namespace}/${reportName(secretName, store.clusterId)}`);
    this.report = { apiVersion: REPORT_API_VERSION, middleware: store.clusterId, secret: `${namespace}/${secretName}`, state: 'Applied' };
  }

  /** The Secret content `info` is in effect. */
  applied(info: SecretReadInfo): Promise<void> {
    this.report = { ...this.report, state: 'Applied', applied: { revision: info.revision, documents: info.documents, at: now() } };
    delete this.report.refused;
    delete this.report.migrating;
    return this.flush();
  }

  /** The Secret content `info` was refused; what was applied before stays in effect. */
  refused(info: SecretReadInfo, reason: string, rules: string[]): Promise<void> {
    this.report = { ...this.report, state: 'Refused', refused: { revision: info.revision, documents: info.documents, at: now(), reason, rules } };
    delete this.report.migrating;
    return this.flush();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
  }

  private flush(): Promise<void> {
    clearTimeout(this.retry);
    this.writing = this.writing.then(() => this.write());
    return this.writing;
  }

  private async write(): Promise<void> {
    if (this.stopped) return;
    // `at` changes on every call; an otherwise equal report is not written again
    const comparable = JSON.stringify({ ...this.report, applied: strip(this.report.applied), refused: strip(this.report.refused) });
    if (comparable === this.written) return;
    try {
      const current = await this.store.range({ key: this.key });
      const createdAt = creationOf(current.kvs[0]?.value) ?? now();
      const value = Buffer.from(JSON.stringify(reportObject(this.report, this.namespace, this.secretName, createdAt)));
      await this.store.put({ key: this.key, value });
      this.written = comparable;
      this.log.info('topology apply report written', { report: this.key.toString(), state: this.report.state });
    } catch (e) {
      this.log.warn('cannot write the topology apply report; retrying', { report: this.key.toString(), error: (e as Error).message, retryInMs: RETRY_MS });
      this.retry = setTimeout(() => void this.flush(), RETRY_MS);
      this.retry.unref();
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

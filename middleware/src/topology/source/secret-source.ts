/**
 * `secret://namespace/name`: the topology Secret the operator writes, read straight from the middleware's own
 * store (key `/registry/secrets/<ns>/<name>`), so no Kubernetes client is needed and it works while the API
 * server is starting. The data keys follow topology/secret-layout.ts: documents apply in bytewise key order,
 * their rules concatenated; every other key is TLS material, written to TOPOLOGY_CONFIG_TLS_DIR before the
 * update is delivered.
 *
 * A Secret that does not exist yet means "no topology yet"; one that is deleted later is an error, never an
 * empty topology: deleting it by accident must not try to move every key to the default backend.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { Logger } from '../../log.js';
import type { BackendRule } from '../schema.js';
import { documentDigest, type SecretReadInfo } from '../apply-report.js';
import { decodeStoredSecret, type StoredSecret } from '../secret-codec.js';
import { formatIssue, TopologyValidationError, validateTopology, type TopologyIssue } from '../validate.js';
import {
  SourceCore,
  TopologySourceError,
  withSecretInfo,
  type SourceReading,
  type StoredKeyReader,
  type TopologySource,
  type TopologySourceHandlers,
  type TopologyUpdate,
} from './source.js';
import { isFileKey, splitSecretData } from '../secret-layout.js';

const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const NAME = /^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/;
/** Backoff for re-reading after the store failed: first retry at once, then 0.5 s doubling to 30 s. */
const RETRY_MAX_MS = 30_000;
const RETRY_RESET_MS = 30_000;

/** A validation issue of a topology Secret, located in the data key it came from. */
export interface SecretTopologyIssue extends TopologyIssue {
  /** The data key holding the offending document or rule. */
  dataKey?: string;
  /** The rule's index inside that data key's own `backends` (`index` is in the merged document). */
  indexInDataKey?: number;
}

/** `data key "0002-shop.rules.yaml" (its backends[1]): backends[3] (name "x"): field "endpoint": ...` */
export function formatSecretIssue(issue: SecretTopologyIssue): string {
  if (issue.dataKey === undefined) return formatIssue(issue);
  const own = issue.indexInDataKey === undefined ? '' : ` (its backends[${issue.indexInDataKey}])`;
  return `data key "${issue.dataKey}"${own}: ${formatIssue(issue)}`;
}

function invalid(origin: string, issues: SecretTopologyIssue[]): TopologyValidationError {
  const err = new TopologyValidationError(origin, issues);
  err.message = `invalid topology from ${origin}:\n  ${issues.map(formatSecretIssue).join('\n  ')}`;
  return err;
}

export interface TopologySecretOptions {
  /** TOPOLOGY_CONFIG_TLS_DIR; without it, TLS data keys are an error. */
  tlsDir?: string;
  /** Store revision the value was read at (recorded in the apply report). */
  revision?: number;
}

/**
 * Turns a stored Secret value into a reading: decoded, documents merged in data key order and validated once
 * (issues name the data key), TLS material prepared for writing. Pure apart from the `prepare` it returns.
 */
export function readTopologySecret(value: Buffer, origin: string, opts: TopologySecretOptions = {}): SourceReading {
  let secret: StoredSecret;
  try {
    secret = decodeStoredSecret(value);
  } catch (e) {
    return { kind: 'error', error: new TopologySourceError(origin, (e as Error).message) };
  }
  const { documents, files: tls } = splitSecretData(secret.data.entries());
  // What the apply report names this reading by: a digest per topology document (see apply-report.ts).
  const info: SecretReadInfo = {
    revision: opts.revision ?? 0,
    documents: documents.map(([, bytes]) => documentDigest(bytes)),
  };
  const issues: SecretTopologyIssue[] = [];
  const rules: BackendRule[] = [];
  /** For each merged rule, the data key it came from and its index there. */
  const from: { dataKey: string; index: number }[] = [];
  for (const [dataKey, bytes] of documents) {
    const text = bytes.toString('utf8');
    let doc: unknown;
    try {
      doc = text.trim() === '' ? null : parseYaml(text);
    } catch (e) {
      issues.push({ dataKey, field: '(document)', message: `is not valid YAML or JSON: ${(e as Error).message}` });
      continue;
    }
    if (doc === null || doc === undefined) continue; // an empty document has no rules
    if (typeof doc !== 'object' || Array.isArray(doc)) {
      issues.push({ dataKey, field: '(document)', message: 'must be a mapping with a "backends" list' });
      continue;
    }
    for (const field of Object.keys(doc)) {
      if (field !== 'backends') issues.push({ dataKey, field, message: 'unknown field; a topology document has only "backends"' });
    }
    const list = (doc as { backends?: unknown }).backends;
    if (list == null) continue;
    if (!Array.isArray(list)) {
      issues.push({ dataKey, field: 'backends', message: `must be a list of rules, got ${JSON.stringify(list)}` });
      continue;
    }
    list.forEach((rule, index) => {
      rules.push(rule as BackendRule);
      from.push({ dataKey, index });
    });
  }
  for (const [key] of tls) {
    if (!isFileKey(key)) {
      issues.push({ dataKey: key, field: '(data key)', message: 'is not a valid file name for TLS material (letters, digits, "-", "_", "." only)' });
    }
  }
  if (issues.length) return { kind: 'error', error: withSecretInfo(invalid(origin, issues), info) };

  const result = validateTopology({ backends: rules });
  if (!result.ok) {
    const located = result.issues.map((i): SecretTopologyIssue => {
      const at = i.index === undefined ? undefined : from[i.index];
      return at ? { ...i, dataKey: at.dataKey, indexInDataKey: at.index } : i;
    });
    return { kind: 'error', error: withSecretInfo(invalid(origin, located), info) };
  }
  if (tls.length && !opts.tlsDir) {
    const keys = tls.map(([k]) => `"${k}"`).join(', ');
    return {
      kind: 'error',
      error: withSecretInfo(new TopologySourceError(
        origin,
        `data keys ${keys} are TLS material (not .yaml, .yml or .json), which needs a directory to be written to: ` +
          'set TOPOLOGY_CONFIG_TLS_DIR (and point the rules\' backendTLS files there), or remove those keys',
      ), info),
    };
  }
  const digest = createHash('sha256');
  for (const [key, bytes] of tls) digest.update(`${key}\0${bytes.length}\0`).update(bytes);
  return {
    kind: 'document',
    document: result.value,
    origin,
    // the documents' digests count too: a rewritten Secret with the same rules must still be reported on
    extraContent: `${tls.length ? digest.digest('hex') : ''}\0${info.documents.join(',')}`,
    secret: info,
    prepare: tls.length ? () => writeTlsFiles(opts.tlsDir!, tls, origin) : undefined,
  };
}

/** Writes each file atomically (temp file, then rename) with mode 0600; unchanged files are left alone. */
async function writeTlsFiles(dir: string, files: [string, Buffer][], origin: string): Promise<Partial<TopologyUpdate>> {
  const changed: string[] = [];
  const root = path.resolve(dir);
  try {
    await mkdir(root, { recursive: true, mode: 0o700 });
    for (const [key, bytes] of files) {
      const target = path.join(root, key);
      const current = await readFile(target).catch(() => undefined);
      if (current?.equals(bytes)) continue;
      const tmp = path.join(root, `.${key}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
      try {
        await writeFile(tmp, bytes, { mode: 0o600, flag: 'wx' });
        await rename(tmp, target);
      } catch (e) {
        await rm(tmp, { force: true });
        throw e;
      }
      changed.push(target);
    }
  } catch (e) {
    throw new TopologySourceError(
      origin,
      `cannot write TLS material to TOPOLOGY_CONFIG_TLS_DIR ${root}: ${(e as Error).message}; the directory must be writable by the middleware`,
    );
  }
  return { tlsFilesChanged: changed };
}

export interface SecretSourceOptions {
  keys: StoredKeyReader;
  logger: Logger;
  tlsDir?: string;
}

/** The topology Secret in the middleware's own store, watched. */
export class SecretTopologySource implements TopologySource {
  readonly description: string;
  /** `/registry/secrets/<namespace>/<name>` */
  readonly key: Buffer;
  private readonly core: SourceCore;
  private cancelWatch?: () => void;
  /** Bumped whenever a watch is replaced, so callbacks of an old one are ignored. */
  private watchGeneration = 0;
  /** Newest revision seen; changes at or below it are already accounted for. */
  private latestRevision = 0;
  /** The Secret existed at some point: its absence is then a deletion, not "not created yet". */
  private existed = false;
  private failures = 0;
  private lastFailureAt = 0;
  private retryTimer?: NodeJS.Timeout;

  constructor(
    readonly namespace: string,
    readonly name: string,
    private readonly opts: SecretSourceOptions,
  ) {
    this.description = `secret://${namespace}/${name}`;
    if (!NAMESPACE.test(namespace) || namespace.length > 63) {
      throw new Error(`TOPOLOGY_CONFIG ${this.description}: "${namespace}" is not a valid namespace (lower-case DNS label)`);
    }
    if (!NAME.test(name) || name.length > 253) {
      throw new Error(`TOPOLOGY_CONFIG ${this.description}: "${name}" is not a valid Secret name (lower-case DNS subdomain)`);
    }
    this.key = Buffer.from(`/registry/secrets/${namespace}/${name}`);
    this.core = new SourceCore(this.description, opts.logger);
  }

  async start(handlers: TopologySourceHandlers): Promise<void> {
    await this.core.start(handlers, () => this.core.deliverNow(() => this.resync(), false));
  }

  async reload(): Promise<void> {
    this.core.requireStarted('reload()');
    await this.core.deliverNow(async () => {
      let got: { value: Buffer | undefined; revision: number };
      try {
        got = await this.opts.keys.get(this.key);
      } catch (e) {
        return this.storeFailure(e, 'the watch, if any, goes on');
      }
      return this.readingAt(got.value, got.revision);
    }, true);
  }

  async stop(): Promise<void> {
    clearTimeout(this.retryTimer);
    this.watchGeneration++;
    this.cancelWatch?.();
    this.cancelWatch = undefined;
    await this.core.stop();
  }

  /** Reads the Secret and watches it from the revision read; runs in the core's read queue. */
  private async resync(): Promise<SourceReading | undefined> {
    this.cancelWatch?.();
    this.cancelWatch = undefined;
    const generation = ++this.watchGeneration;
    let got: { value: Buffer | undefined; revision: number };
    try {
      got = await this.opts.keys.get(this.key);
    } catch (e) {
      this.retryLater();
      return this.storeFailure(e, 'retrying');
    }
    if (this.core.stopped || generation !== this.watchGeneration) return undefined;
    const reading = this.readingAt(got.value, got.revision);
    try {
      this.cancelWatch = this.opts.keys.watch(
        this.key,
        got.revision,
        (value, revision) => {
          if (generation !== this.watchGeneration || this.core.stopped) return;
          // checked when its turn in the read queue comes: a reload may have read a newer state meanwhile
          void this.core.refresh(async () => (revision > this.latestRevision ? this.readingAt(value, revision) : undefined), false);
        },
        (err) => {
          if (generation !== this.watchGeneration || this.core.stopped) return;
          this.opts.logger.warn('watch of the topology Secret broke; reading it again', { source: this.description, error: err.message });
          this.watchGeneration++;
          this.retryLater();
        },
      );
    } catch (e) {
      this.opts.logger.warn('cannot watch the topology Secret; reading it again', { source: this.description, error: (e as Error).message });
      this.retryLater();
    }
    return reading;
  }

  /** Schedules a resync: at once after the first failure, backing off while failures repeat. */
  private retryLater(): void {
    if (this.core.stopped) return;
    const now = Date.now();
    if (now - this.lastFailureAt > RETRY_RESET_MS) this.failures = 0;
    this.lastFailureAt = now;
    const delay = this.failures === 0 ? 0 : Math.min(RETRY_MAX_MS, 500 * 2 ** (this.failures - 1));
    this.failures++;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.core.refresh(() => this.resync(), false), delay);
    this.retryTimer.unref();
  }

  private storeFailure(e: unknown, next: string): SourceReading {
    const message = e instanceof Error ? e.message : String(e);
    return {
      kind: 'error',
      error: new TopologySourceError(this.description, `cannot read key ${this.key} from the middleware's store: ${message}; ${next}`),
    };
  }

  private readingAt(value: Buffer | undefined, revision: number): SourceReading | undefined {
    this.latestRevision = Math.max(this.latestRevision, revision);
    const origin = `${this.description} (revision ${revision})`;
    if (value === undefined) {
      if (!this.existed) {
        this.opts.logger.info('topology Secret does not exist yet; waiting for it to be created', { source: this.description, revision });
        return undefined;
      }
      return {
        kind: 'error',
        error: new TopologySourceError(
          origin,
          'the Secret was deleted; the last good topology stays active (a deleted Secret is not read as "no rules": ' +
            'that would move every key to the default backend). Recreate it, e.g. by re-applying a TopologyConfig',
        ),
      };
    }
    this.existed = true;
    return readTopologySecret(value, origin, { tlsDir: this.opts.tlsDir, revision });
  }
}

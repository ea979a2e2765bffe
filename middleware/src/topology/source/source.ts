/**
 * Topology sources (`TOPOLOGY_CONFIG`, docs/architecture.md, "The topology lifecycle"): where the middleware reads its topology and how
 * it notices changes. This file holds the contract and the logic every source shares (`SourceCore`): reads
 * run one at a time, results are compared by content, deliveries are serialised and changes that arrive
 * during a slow `onUpdate` are coalesced to the newest. The spec parser that picks a source is create.ts.
 *
 * The sources only read and validate. Applying a document (opening backends, refusing changes that would move
 * existing keys) is the caller's `onUpdate`.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import type { TopologyDocument } from '../schema.js';
import type { SecretReadInfo } from '../apply-report.js';
import type { Logger } from '../../log.js';

export interface TopologyUpdate {
  /** The validated merged document. */
  document: TopologyDocument;
  /** Where it came from, for logs and errors, never with credentials: e.g. "file:///etc/topology.yaml", "secret://harikube/topology-config (revision 42)". */
  origin: string;
  /** SHA-256 (hex) of the canonical content (document plus any TLS material); equal hashes = equal content. */
  hash: string;
  /** secret:// only: which Secret content this is (for the apply report). */
  secret?: SecretReadInfo;
  /** secret:// only: absolute paths of TLS files whose content was (re)written for this update, so backends using them can reconnect. */
  tlsFilesChanged?: string[];
}

export interface TopologySourceHandlers {
  /**
   * A new valid document (only when its content changed since the last one delivered). Never called
   * concurrently: the source awaits it before delivering another, and coalesces changes that arrive meanwhile
   * to the newest. If it throws/rejects, the source logs nothing itself but calls onError with that error and
   * will deliver the next change normally (a document that was refused is delivered again only if its content
   * changes again or on `reload()`).
   */
  onUpdate(update: TopologyUpdate): Promise<void>;
  /**
   * The source is unreadable or its content invalid: the last good topology stays active. Errors name the
   * source, the rule (by index and name) and the field. The source does not log these itself. The same error
   * twice in a row is reported once (until something else happens or on `reload()`).
   */
  onError(error: Error): void;
}

export interface TopologySource {
  /** e.g. "file:///etc/topology.yaml" (credentials redacted for http URLs). */
  readonly description: string;
  /** Reads the current content (calling onUpdate/onError once before resolving, when there is content or an error) and then keeps watching. */
  start(handlers: TopologySourceHandlers): Promise<void>;
  /**
   * Re-reads now and delivers the document even if unchanged (used after a refused change and for SIGHUP).
   * Resolves once that delivery settled; called from inside `onUpdate` it resolves once queued instead, so it
   * cannot deadlock.
   */
  reload(): Promise<void>;
  /** Stops watching; waits for an `onUpdate` in progress (unless called from inside it). No handler runs afterwards. */
  stop(): Promise<void>;
}

/** What secret:// needs from the middleware's own store (I implement it over the store; you test with a fake). */
export interface StoredKeyReader {
  /** The value of `key` now (undefined if absent) and the revision read at. */
  get(key: Buffer): Promise<{ value: Buffer | undefined; revision: number }>;
  /** Calls `onChange` for each change of `key` after `afterRevision`, in order (value undefined = deleted). Returns a function that cancels. `onError` if the watch breaks (e.g. compacted); the source then re-reads with get() and watches again. */
  watch(
    key: Buffer,
    afterRevision: number,
    onChange: (value: Buffer | undefined, revision: number) => void,
    onError: (err: Error) => void,
  ): () => void;
}

/** A source could not be read (content that was read but is invalid is a `TopologyValidationError`). */
export class TopologySourceError extends Error {
  constructor(
    /** The source (and revision, where known), never with credentials. */
    readonly source: string,
    problem: string,
  ) {
    super(`topology source ${source}: ${problem}`);
    this.name = 'TopologySourceError';
  }
}

/** One reading of a source: a validated document, or why there is none. */
export type SourceReading =
  | {
      kind: 'document';
      document: TopologyDocument;
      origin: string;
      /** Content besides the document that counts for change detection (a digest of TLS material). */
      extraContent?: string;
      /** secret:// only: which Secret content this is (for the apply report). */
      secret?: SecretReadInfo;
      /** Runs just before `onUpdate` (writing TLS files); its result is merged into the update; a throw is reported through onError. */
      prepare?: () => Promise<Partial<TopologyUpdate> | void>;
    }
  | { kind: 'error'; error: Error };

/** Stable JSON: object keys sorted, so equal documents hash equally whatever the key order in the file. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const fields = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`);
    return `{${fields.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** The content hash change detection uses (exported for tests and for callers that record what they applied). */
export function documentContentHash(document: TopologyDocument, extraContent = ''): string {
  return createHash('sha256').update(canonicalJson(document)).update('\0').update(extraContent).digest('hex');
}

/** Marks an error as being about this Secret content (a refused reading is reported too). */
export function withSecretInfo<E extends Error>(err: E, info: SecretReadInfo): E {
  (err as E & { secretInfo?: SecretReadInfo }).secretInfo = info;
  return err;
}

export function secretInfoOf(err: unknown): SecretReadInfo | undefined {
  return (err as { secretInfo?: SecretReadInfo } | undefined)?.secretInfo;
}

function toError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

interface Job {
  reading: SourceReading;
  force: boolean;
  waiters: (() => void)[];
}

/**
 * Marks code running inside `onUpdate`, so reload()/stop() from there do not wait for themselves. While an
 * AsyncLocalStorage is enabled, Node runs async hooks for every promise of the process (a few percent of a
 * busy server's CPU), so it is enabled only while some source's `onUpdate` runs (`handlersRunning`).
 */
const inHandler = new AsyncLocalStorage<boolean>();
let handlersRunning = 0;

/**
 * The part of every source that is not about reading: start/stop state, one read at a time (so results are
 * queued in the order the reads started), change detection by content hash, serialised delivery and
 * coalescing to the newest reading.
 */
export class SourceCore {
  private handlers?: TopologySourceHandlers;
  private state: 'new' | 'started' | 'stopped' = 'new';
  private lastHash?: string;
  private lastError?: string;
  private pending?: Job;
  private draining = false;
  private drained: Promise<void> = Promise.resolve();
  private reads: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly description: string,
    private readonly log: Logger,
  ) {}

  get stopped(): boolean {
    return this.state === 'stopped';
  }

  /** Records the handlers and runs `initial` (the first read and starting the watch). */
  async start(handlers: TopologySourceHandlers, initial: () => Promise<void>): Promise<void> {
    if (this.state !== 'new') throw new Error(`topology source ${this.description} was already ${this.state}; create a new one`);
    this.handlers = handlers;
    this.state = 'started';
    await initial();
  }

  requireStarted(what: string): void {
    if (this.state !== 'started') throw new Error(`topology source ${this.description}: ${what} needs a started source (it is ${this.state})`);
  }

  /**
   * Runs `read` after every earlier read finished and queues its result (undefined = nothing to deliver).
   * Resolves once queued; `delivered` resolves once handled (delivered, found unchanged, or superseded).
   */
  refresh(read: () => Promise<SourceReading | undefined>, force: boolean): Promise<{ delivered: Promise<void> }> {
    const run = this.reads.then(async () => {
      if (this.stopped) return { delivered: Promise.resolve() };
      let reading: SourceReading | undefined;
      try {
        reading = await read();
      } catch (e) {
        // sources turn their failures into readings; this is the safety net for the unexpected
        reading = { kind: 'error', error: new TopologySourceError(this.description, toError(e).message) };
      }
      return { delivered: reading ? this.submit(reading, force) : Promise.resolve() };
    });
    this.reads = run.catch(() => undefined);
    return run;
  }

  /** `refresh`, then waits for the delivery, except inside `onUpdate` (where waiting would wait for itself). */
  async deliverNow(read: () => Promise<SourceReading | undefined>, force: boolean): Promise<void> {
    const { delivered } = await this.refresh(read, force);
    if (!inHandler.getStore()) await delivered;
  }

  /** No handler runs after this; waits for an `onUpdate` in progress unless called from inside it. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    const job = this.pending;
    this.pending = undefined;
    job?.waiters.forEach((w) => w());
    if (!inHandler.getStore()) await this.drained;
  }

  private submit(reading: SourceReading, force: boolean): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      if (this.pending) {
        // a delivery is in progress: only the newest reading matters, but a reload's "even if unchanged" stays
        this.pending.reading = reading;
        this.pending.force ||= force;
        this.pending.waiters.push(resolve);
      } else {
        this.pending = { reading, force, waiters: [resolve] };
      }
      if (!this.draining) {
        this.draining = true;
        this.drained = this.drain();
      }
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending && !this.stopped) {
        const job = this.pending;
        this.pending = undefined;
        try {
          await this.handle(job.reading, job.force);
        } finally {
          job.waiters.forEach((w) => w());
        }
      }
    } finally {
      this.draining = false;
    }
  }

  private async handle(reading: SourceReading, force: boolean): Promise<void> {
    const handlers = this.handlers!;
    if (reading.kind === 'error') {
      if (!force && reading.error.message === this.lastError) {
        this.log.debug('topology source still failing with the same error; not reported again', { source: this.description });
        return;
      }
      this.lastError = reading.error.message;
      this.reportError(reading.error);
      return;
    }
    const hash = documentContentHash(reading.document, reading.extraContent);
    const recovered = this.lastError !== undefined;
    this.lastError = undefined;
    if (!force && hash === this.lastHash) {
      const fields = { source: this.description, origin: reading.origin };
      if (recovered) this.log.info('topology source is readable again; its topology is unchanged', fields);
      else this.log.debug('topology unchanged; not delivered', fields);
      return;
    }
    let extra: Partial<TopologyUpdate> = {};
    try {
      extra = (await reading.prepare?.()) ?? {};
    } catch (e) {
      const err = toError(e);
      this.lastError = err.message;
      this.reportError(err);
      return;
    }
    if (this.stopped) return;
    // recorded before the call: a refused document is not delivered again until it changes or reload()
    this.lastHash = hash;
    handlersRunning++;
    try {
      await inHandler.run(true, () => handlers.onUpdate({ ...extra, document: reading.document, origin: reading.origin, hash, secret: reading.secret }));
    } catch (e) {
      this.reportError(toError(e));
    } finally {
      // a continuation of this handler that runs later is no longer inside it: waiting is right there
      if (--handlersRunning === 0) inHandler.disable();
    }
  }

  private reportError(err: Error): void {
    try {
      this.handlers!.onError(err);
    } catch (e) {
      this.log.error('topology source onError handler threw', { source: this.description, error: toError(e).message });
    }
  }
}

/**
 * A list+watch cache of one kind of object (client-go's reflector + store, the small version): list, then
 * watch from the list's resourceVersion; re-watch from the last seen version when a watch ends; re-list when
 * the server says the version is gone (410) or the watch keeps failing; back off between failures. Handlers
 * see adds, updates and deletes in order, including those found by comparing a re-list with the cache.
 */
import type { Logger } from '../log.js';
import { Backoff, sleep } from './backoff.js';
import { isGone, type KubeClient, type KubeList, type KubeObject, type WatchEvent } from './kube-client.js';

export interface InformerHandlers<T> {
  add?(obj: T): void;
  update?(old: T, obj: T): void;
  delete?(obj: T): void;
}

export interface InformerOptions {
  client: KubeClient;
  /** Collection path (cluster-wide list/watch). */
  path: string;
  labelSelector?: string;
  log: Logger;
  /** Server-side watch timeout; each watch picks a random value in [t, 2t) like client-go. */
  watchTimeoutSeconds?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Page size of lists. */
  pageSize?: number;
}

class GoneError extends Error {}

const objectKey = (o: KubeObject): string => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;

export class Informer<T extends KubeObject> {
  private readonly cache = new Map<string, T>();
  private readonly handlers: InformerHandlers<T>[] = [];
  private readonly abort = new AbortController();
  private resourceVersion = '';
  private synced = false;
  private loop?: Promise<void>;
  private syncWaiters: Array<() => void> = [];
  /** Set while the last list or watch attempt failed (for health reporting). */
  lastError?: string;
  /** When list/watch started failing without a success since (ms since the epoch); undefined while connected. */
  failingSince?: number;

  constructor(private readonly opts: InformerOptions) {}

  /** e.g. `/api/v1/namespaces/harikube/secrets`, for health messages. */
  get description(): string {
    return this.opts.labelSelector ? `${this.opts.path}?labelSelector=${this.opts.labelSelector}` : this.opts.path;
  }

  private connected(): void {
    this.lastError = undefined;
    this.failingSince = undefined;
  }

  on(handlers: InformerHandlers<T>): void {
    this.handlers.push(handlers);
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once the first list is in the cache (or when stopped). */
  waitForSync(): Promise<void> {
    if (this.synced || this.abort.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  list(): T[] {
    return [...this.cache.values()];
  }

  get(namespace: string, name: string): T | undefined {
    return this.cache.get(`${namespace}/${name}`);
  }

  private emit(fn: (h: InformerHandlers<T>) => void): void {
    for (const h of this.handlers) {
      try {
        fn(h);
      } catch (e) {
        this.opts.log.error('informer handler failed', { error: e });
      }
    }
  }

  private async run(): Promise<void> {
    const { client, log } = this.opts;
    const signal = this.abort.signal;
    const backoff = new Backoff(this.opts.backoffBaseMs ?? 200, this.opts.backoffMaxMs ?? 30_000);
    const timeout = this.opts.watchTimeoutSeconds ?? 300;
    while (!signal.aborted) {
      try {
        if (!this.resourceVersion) await this.relist();
        const started = Date.now();
        let events = 0;
        await client.watch<T>(
          this.opts.path,
          {
            resourceVersion: this.resourceVersion,
            allowWatchBookmarks: true,
            timeoutSeconds: timeout + Math.floor(Math.random() * timeout),
            labelSelector: this.opts.labelSelector,
          },
          (event) => {
            events++;
            this.apply(event);
          },
          signal,
          () => this.connected(),
        );
        this.lastError = undefined;
        // A watch that ends at once with nothing in it is a misbehaving server: do not spin.
        if (events === 0 && Date.now() - started < 1000) await sleep(backoff.next(), signal);
        else backoff.reset();
      } catch (e) {
        if (signal.aborted) break;
        if (e instanceof GoneError || isGone(e)) {
          log.info('resource version expired; re-listing', { path: this.opts.path });
          this.resourceVersion = '';
          continue;
        }
        this.lastError = (e as Error).message;
        this.failingSince ??= Date.now();
        const delay = backoff.next();
        log.warn('list/watch failed; retrying', { path: this.opts.path, error: e, retryInMs: delay });
        await sleep(delay, signal);
      }
    }
    for (const w of this.syncWaiters.splice(0)) w();
  }

  private async relist(): Promise<void> {
    const items: T[] = [];
    let cont: string | undefined;
    let rv = '';
    do {
      const page = await this.opts.client.request<KubeList<T>>('GET', this.opts.path, {
        query: { labelSelector: this.opts.labelSelector, limit: this.opts.pageSize ?? 500, continue: cont },
      });
      items.push(...(page.items ?? []));
      cont = page.metadata?.continue || undefined;
      rv = page.metadata?.resourceVersion ?? '';
    } while (cont);

    const fresh = new Map(items.map((o) => [objectKey(o), o]));
    for (const [key, old] of this.cache) {
      if (!fresh.has(key)) {
        this.cache.delete(key);
        this.emit((h) => h.delete?.(old));
      }
    }
    for (const [key, obj] of fresh) {
      const old = this.cache.get(key);
      this.cache.set(key, obj);
      if (!old) this.emit((h) => h.add?.(obj));
      else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) this.emit((h) => h.update?.(old, obj));
    }
    this.resourceVersion = rv;
    this.connected();
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
    this.opts.log.debug('listed', { path: this.opts.path, count: items.length, resourceVersion: rv });
  }

  private apply(event: WatchEvent<T>): void {
    if (event.type === 'ERROR') {
      const status = event.object as unknown as { code?: number; message?: string };
      if (status.code === 410) throw new GoneError(status.message ?? 'resource version too old');
      throw new Error(`watch error from the server: ${status.code ?? ''} ${status.message ?? JSON.stringify(status)}`);
    }
    const obj = event.object;
    if (!obj?.metadata) return;
    if (event.type !== 'BOOKMARK') {
      const key = objectKey(obj);
      const old = this.cache.get(key);
      if (event.type === 'DELETED') {
        this.cache.delete(key);
        this.emit((h) => h.delete?.(obj));
      } else {
        this.cache.set(key, obj);
        if (old) this.emit((h) => h.update?.(old, obj));
        else this.emit((h) => h.add?.(obj));
      }
    }
    if (obj.metadata.resourceVersion) this.resourceVersion = obj.metadata.resourceVersion;
  }
}

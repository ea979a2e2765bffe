/**
 * The backend of an `http(s)://` endpoint: a real etcd or another HariKube middleware (a child layer). Both
 * speak the etcd API, so the endpoint alone cannot tell; at open the middleware's layer service is asked
 * (`Hello`): a middleware answers it, an etcd answers UNIMPLEMENTED. Everything else is passed to the
 * backend found (etcd-backend.ts or middleware/middleware-backend.ts).
 */
import type { EtcdEndpoint } from '../topology/endpoint.js';
import type { Backend, ChangeRow, CompactResult, KeyRow, LeaseRow, RangeQuery, WriteTxn } from './backend.js';
import { EtcdBackend, type EtcdBackendOptions } from './etcd/etcd-backend.js';
import { LayerClient, NotAMiddlewareError } from './middleware/layer-client.js';
import { MiddlewareBackend, type MiddlewareBackendOptions } from './middleware/middleware-backend.js';
import type { KeyMoves, MovableBackend } from './movable.js';

export class HttpBackend implements Backend {
  private inner?: Backend;

  constructor(
    private readonly endpoint: EtcdEndpoint,
    readonly description: string,
    private readonly opts: EtcdBackendOptions & MiddlewareBackendOptions,
  ) {}

  get readsAhead(): boolean {
    return this.inner?.readsAhead ?? false;
  }

  /** The migration operations of the backend found, if it has them (see movable.ts). */
  get moves(): KeyMoves | undefined {
    return (this.inner as Partial<MovableBackend> | undefined)?.moves;
  }

  /** Why the backend found cannot take part in a migration, when it says (see movable.ts). */
  get movesRefused(): string | undefined {
    return (this.inner as { movesRefused?: string } | undefined)?.movesRefused;
  }

  async open(): Promise<void> {
    this.inner ??= await this.detect();
    await this.inner.open();
  }

  private async detect(): Promise<Backend> {
    const probe = new LayerClient({ hosts: this.endpoint.hosts, tls: this.endpoint.tls, backendTLS: this.opts.tls, timeoutMs: this.opts.queryTimeoutMs, description: this.description }, 'the etcd or middleware');
    try {
      await probe.call('Hello', {});
      return new MiddlewareBackend(this.endpoint, this.description, this.opts);
    } catch (err) {
      if (err instanceof NotAMiddlewareError) return new EtcdBackend(this.endpoint, this.description, this.opts);
      throw err;
    } finally {
      probe.close();
    }
  }

  private get b(): Backend {
    if (!this.inner) throw new Error(`${this.description}: the backend is not open (call open() first)`);
    return this.inner;
  }

  async close(): Promise<void> {
    await this.inner?.close();
  }
  maxRevision(): Promise<number> {
    return this.b.maxRevision();
  }
  range(q: RangeQuery): Promise<KeyRow[]> {
    return this.b.range(q);
  }
  count(start: Buffer, end: Buffer | undefined, revision: number): Promise<number> {
    return this.b.count(start, end, revision);
  }
  changes(from: number, to: number, limit: number): Promise<ChangeRow[]> {
    return this.b.changes(from, to, limit);
  }
  begin(): Promise<WriteTxn> {
    return this.b.begin();
  }
  revert(from: number, to: number): Promise<void> {
    return this.b.revert(from, to);
  }
  async recover(): Promise<void> {
    await this.inner?.recover();
  }
  compact(revision: number, batchSize: number, deadline: number): Promise<CompactResult> {
    return this.b.compact(revision, batchSize, deadline);
  }
  getMeta(name: string): Promise<Buffer | undefined> {
    return this.b.getMeta(name);
  }
  leases(): Promise<LeaseRow[]> {
    return this.b.leases();
  }
  leasedKeys(): Promise<{ key: Buffer; lease: string }[]> {
    return this.b.leasedKeys();
  }
  sizeBytes(): Promise<number> {
    return this.b.sizeBytes();
  }
}

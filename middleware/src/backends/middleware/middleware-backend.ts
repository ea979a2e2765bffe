/**
 * Another HariKube middleware as a rule backend (a child layer; docs/architecture.md, "Layers"). The parent
 * hands its rows down with their global revisions through the layer service (layer-protocol.ts) and the
 * child stores them as they are: no envelope, no revision map. Reads at a revision, history (watch
 * catch-up), compaction and the undo of a write across databases pass through to the child's storage at
 * the same revisions. Leases stay with the parent's lessor: rows carry the lease ID, the child never
 * expires them.
 */
import type { EtcdEndpoint } from '../../topology/endpoint.js';
import type { BackendTLS } from '../../topology/schema.js';
import { type Backend, type ChangeRow, type CompactResult, type KeyRow, type LeaseRow, type RangeQuery, type WriteTxn } from '../backend.js';
import { Lock } from '../sql/lock.js';
import { BufferedWriteTxn } from '../buffered-txn.js';
import { NewestRows } from '../newest-rows.js';
import { WrittenKeys } from '../written-keys.js';
import type { KeyMoves } from '../movable.js';
import { LayerClient } from './layer-client.js';
import { LayerMoves } from './layer-moves.js';
import { MAX_HANDED_DOWN_BYTES, handedDownBytes } from './layer-protocol.js';

export interface MiddlewareBackendOptions {
  tls?: BackendTLS;
  /** Deadline of one call, ms (0: none). */
  queryTimeoutMs: number;
  /**
   * This middleware's cluster ID, sent with every call that changes the child (the child answers only to
   * the parent that claimed it). Read from the meta store when first needed: a restarting parent recovers
   * its backends before its store is open.
   */
  parentClusterId?: () => Promise<string>;
}

export class MiddlewareBackend implements Backend {
  readonly readsAhead = true;
  private client?: LayerClient;
  private readonly writeLock = new Lock();
  /**
   * The online migration's operations (backends/movable.ts), set at `open` when the child says its own
   * storage can copy rows at their revisions; else `movesRefused` says why not (for the refusal of a
   * topology that would move keys into or out of it).
   */
  moves?: KeyMoves;
  movesRefused = 'not open';
  /** The newest rows its write transactions know without asking (newest-rows.ts). */
  readonly newest = new NewestRows(this.writeLock);
  /** The keys the child may hold rows of (written-keys.ts): read when the first write transaction begins. */
  readonly written = new WrittenKeys();

  constructor(
    private readonly endpoint: EtcdEndpoint,
    readonly description: string,
    private readonly opts: MiddlewareBackendOptions,
  ) {}

  /** Connects and checks that the child can serve this parent (see `HttpBackend`, which tells it from an etcd). */
  async open(): Promise<void> {
    if (this.client) return;
    const client = new LayerClient({ hosts: this.endpoint.hosts, tls: this.endpoint.tls, backendTLS: this.opts.tls, timeoutMs: this.opts.queryTimeoutMs, description: this.description });
    try {
      const hello = await client.call('Hello', {});
      if (hello.enveloped && !hello.parent) {
        throw new Error(
          `${this.description}: this middleware holds data an older HariKube parent wrote through the etcd API (values in "harikube/v1" envelopes, harikube/revision/ and harikube/meta/ keys, in its own revision space). ` +
            'A child layer now stores rows at its parent\'s revisions and cannot take that data: start the child on empty databases, then copy the keys through the parent (read them from the old layers, put them through the new ones)',
        );
      }
      this.client = client;
      this.movesRefused = hello.movesRefused ?? 'the child middleware is of a version without the migration calls: upgrade it';
      if (this.movesRefused === '') this.moves = new LayerMoves(() => this.asParent(), this.writeLock, this.written);
    } catch (err) {
      client.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.writeLock.run(() => {
      this.client?.close();
      this.client = undefined;
    });
  }

  async maxRevision(): Promise<number> {
    return (await this.live().call('MaxRevision', {})).revision;
  }

  async range(q: RangeQuery): Promise<KeyRow[]> {
    return (await this.live().call('Range', q)).rows;
  }

  async count(start: Buffer, end: Buffer | undefined, revision: number): Promise<number> {
    return (await this.live().call('Count', { start, end, revision })).count;
  }

  async changes(from: number, to: number, limit: number): Promise<ChangeRow[]> {
    return (await this.live().call('Changes', { from, to, limit })).rows;
  }

  async begin(): Promise<WriteTxn> {
    const release = await this.writeLock.acquire();
    try {
      this.live();
      // a child that cannot read deleted keys (no migration calls) is never read: every key counts as present
      if (this.movesRefused === '') {
        this.written.loadInBackground(
          async (start, limit) => (await this.live().call('RangeWithTombstones', { start, end: Buffer.alloc(0), revision: Number.MAX_SAFE_INTEGER, limit, keysOnly: true })).rows,
          () => this.client !== undefined,
          this.description,
        );
      }
    } catch (err) {
      release();
      throw err;
    }
    return new BufferedWriteTxn(this, release);
  }

  /** The newest row of each of `keys`, a tombstone included (a transaction's reads, `WriteTxn.latest`). */
  async latestMany(keys: Buffer[]): Promise<(KeyRow | undefined)[]> {
    return (await this.live().call('Latest', { keys, tombstones: true })).rows.map((r) => r ?? undefined);
  }

  /** The newest row of `key`, a tombstone included (a transaction's reads, `WriteTxn.latest`). */
  async latest(key: Buffer): Promise<KeyRow | undefined> {
    return (await this.latestMany([key]))[0];
  }

  /**
   * Hands a transaction's rows down, whole revisions per call. A failure after a first call committed
   * leaves the later revisions out: the caller's in-doubt handling reads back what the child holds.
   */
  async commitRows(rows: KeyRow[], meta: Map<string, Buffer>, readAhead?: Buffer[]): Promise<(KeyRow | undefined)[] | void> {
    const c = await this.asParent();
    let ahead: (KeyRow | null)[] | undefined;
    const sorted = [...rows].sort((a, b) => a.modRevision - b.modRevision || a.sub - b.sub);
    let chunk: KeyRow[] = [];
    let bytes = 0;
    const send = async (last: boolean) => {
      const res = await c.call('Write', { rows: chunk, meta: last ? [...meta].map(([name, value]) => ({ name, value })) : [], ...(last && readAhead ? { readAhead } : {}) });
      // a child of an older version answers none: the next transaction reads its keys itself
      if (last) ahead = res.readAhead;
      chunk = [];
      bytes = 0;
    };
    for (let i = 0; i < sorted.length; i++) {
      const r = sorted[i]!;
      chunk.push(r);
      bytes += handedDownBytes(r);
      const revisionEnds = i + 1 === sorted.length || sorted[i + 1]!.modRevision !== r.modRevision;
      if (revisionEnds && bytes >= MAX_HANDED_DOWN_BYTES && i + 1 < sorted.length) await send(false);
    }
    // the meta values (the claim) and the keys to read ahead go with the last rows, or alone
    await send(true);
    return ahead?.map((r) => r ?? undefined);
  }

  async revert(from: number, to: number): Promise<void> {
    await this.writeLock.run(async () => (await this.asParent()).call('Revert', { from, to }));
  }

  async recover(): Promise<void> {
    if (this.client) await this.writeLock.run(async () => (await this.asParent()).call('Recover', {}));
  }

  async compact(revision: number, batchSize: number, deadline: number): Promise<CompactResult> {
    // compaction (which does not take the write lock here) removes tombstones the rows read ahead may hold
    this.newest.clear();
    // the child's step ends at the deadline: the call may take a little longer to answer
    const t = this.opts.queryTimeoutMs;
    return (await this.asParent()).call('Compact', { revision, batchSize, deadline }, t > 0 ? Math.max(t, deadline - Date.now() + t) : 0);
  }

  async getMeta(name: string): Promise<Buffer | undefined> {
    return (await this.live().call('GetMeta', { name })).value;
  }

  /** The parent's lessor keeps every lease (in its default backend); the child only stores lease IDs on rows. */
  async leases(): Promise<LeaseRow[]> {
    return [];
  }

  async leasedKeys(): Promise<{ key: Buffer; lease: string }[]> {
    return (await this.live().call('LeasedKeys', {})).keys;
  }

  async sizeBytes(): Promise<number> {
    return (await this.live().call('SizeBytes', {})).bytes;
  }

  /** The client, with this parent's cluster ID to send (see `parentClusterId`). */
  private async asParent(): Promise<LayerClient> {
    const c = this.live();
    if (!c.parent && this.opts.parentClusterId) c.parent = await this.opts.parentClusterId();
    return c;
  }

  private live(): LayerClient {
    if (!this.client) throw new Error(`${this.description}: the backend is not open (call open() first, and not after close())`);
    return this.client;
  }
}

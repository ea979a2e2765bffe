/**
 * A `Backend` over the route table: every request is sent to the backends that own its keys and their
 * answers are merged, so the store above sees one revisioned log (ARCHITECTURE.md, "The revision model").
 * Meta values and leases live in the default backend. With no rules, every call goes straight to the
 * default backend.
 */
import {
  BackendUnavailableError,
  type Backend,
  type ChangeRow,
  type CompactResult,
  type KeyRow,
  type LeaseRow,
  type RangeQuery,
  type WriteTxn,
} from '../backends/backend.js';
import type { BackendRule, TopologyDocument } from '../topology/schema.js';
import { redactEndpoint } from '../topology/endpoint.js';
import { mergeByKey, mergeByRevision } from './merge.js';
import { RouteTable } from './route-table.js';
import { PendingReverts } from './pending-reverts.js';
import { RoutedTxn } from './routed-txn.js';

/** Meta value (default backend) holding the topology in effect, so a restart routes as before it. */
export const META_TOPOLOGY = 'topology';

/** Creates (not opens) the backend of a rule. */
export type BackendFactory = (rule: BackendRule) => Backend;

/** Opens the backends of `rules`, all or none: on failure the ones opened are closed and the error names the rule. */
export async function openRuleBackends(rules: readonly BackendRule[], factory: BackendFactory): Promise<Map<string, Backend>> {
  const opened = new Map<string, Backend>();
  const results = await Promise.allSettled(
    rules.map(async (rule) => {
      let backend: Backend;
      try {
        backend = factory(rule);
      } catch (err) {
        throw new Error(`rule "${rule.name}": ${(err as Error).message}`, { cause: err });
      }
      try {
        await backend.open();
      } catch (err) {
        throw new BackendUnavailableError(`rule "${rule.name}" (${redactEndpoint(rule.endpoint)}): ${(err as Error).message}`, { cause: err });
      }
      opened.set(rule.name, backend);
    }),
  );
  const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
  if (failed) {
    await Promise.allSettled([...opened.values()].map((b) => b.close()));
    throw failed.reason;
  }
  return opened;
}

export class RoutedBackend implements Backend {
  private current: RouteTable;
  private opened = false;
  private readonly pending = new PendingReverts(() => this.current);

  constructor(
    readonly defaultBackend: Backend,
    private readonly factory: BackendFactory,
  ) {
    this.current = RouteTable.single(defaultBackend);
  }

  get description(): string {
    const n = this.current.backends.size;
    return n === 0 ? this.defaultBackend.description : `${this.defaultBackend.description} + ${n} routed backend(s)`;
  }

  /** The routing in effect. */
  get table(): RouteTable {
    return this.current;
  }

  /** Puts a new table in effect. The caller serialises this with writes (the store's write queue). */
  swap(table: RouteTable): void {
    this.current = table;
  }

  /** Opens the default backend, then the backends of the topology that was in effect before (persisted in meta). */
  async open(): Promise<void> {
    if (this.opened) return;
    await this.defaultBackend.open();
    try {
      await this.openSavedTopology();
    } catch (err) {
      await this.defaultBackend.close();
      throw err;
    }
    this.opened = true;
  }

  private async openSavedTopology(): Promise<void> {
    const saved = await this.defaultBackend.getMeta(META_TOPOLOGY);
    if (!saved) return;
    const doc = await parseSavedTopology(saved, this.defaultBackend.description);
    if (doc.backends.length === 0) return;
    let backends: Map<string, Backend>;
    try {
      backends = await openRuleBackends(doc.backends, this.factory);
    } catch (err) {
      throw new BackendUnavailableError(
        `${(err as Error).message}; it belongs to the topology in effect and may hold data, so the middleware does not start without it`,
        { cause: err },
      );
    }
    this.current = new RouteTable(doc, this.defaultBackend, backends);
  }

  async close(): Promise<void> {
    this.opened = false;
    await Promise.allSettled(this.current.all().slice(1).map((b) => b.close()));
    await this.defaultBackend.close();
  }

  async maxRevision(): Promise<number> {
    const t = this.current;
    if (t.isSingle) return this.defaultBackend.maxRevision();
    return Math.max(...(await Promise.all(t.all().map((b) => b.maxRevision()))));
  }

  async range(q: RangeQuery): Promise<KeyRow[]> {
    const t = this.current;
    if (t.isSingle) return this.defaultBackend.range(q);
    const readers = await this.settled(t.readersOf(q.start, q.end));
    if (readers.length === 1) return readers[0]!.range(q);
    return mergeByKey(await Promise.all(readers.map((b) => b.range(q))), q.limit);
  }

  async count(start: Buffer, end: Buffer | undefined, revision: number): Promise<number> {
    const t = this.current;
    if (t.isSingle) return this.defaultBackend.count(start, end, revision);
    const readers = await this.settled(t.readersOf(start, end));
    if (readers.length === 1) return readers[0]!.count(start, end, revision);
    const counts = await Promise.all(readers.map((b) => b.count(start, end, revision)));
    return counts.reduce((a, b) => a + b, 0);
  }

  async changes(from: number, to: number, limit: number): Promise<ChangeRow[]> {
    const t = this.current;
    if (t.isSingle) return this.defaultBackend.changes(from, to, limit);
    const all = await this.settled(t.all());
    return mergeByRevision(await Promise.all(all.map((b) => b.changes(from, to, limit))), limit);
  }

  begin(): Promise<WriteTxn> {
    const t = this.current;
    if (t.isSingle) return this.defaultBackend.begin();
    return Promise.resolve(new RoutedTxn(t, this.pending));
  }

  async revert(from: number, to: number): Promise<void> {
    for (const b of this.current.all()) await b.revert(from, to);
  }

  /**
   * Each backend's own recovery, then the reverts still to do (a write across databases left between its
   * commits by a crash, or taken back while a database was down); a database that still fails keeps its
   * revert pending and only requests touching it fail.
   */
  async recover(): Promise<void> {
    for (const b of this.current.all()) {
      try {
        await b.recover();
      } catch {
        // its reads and writes fail (and report why) until it is back
      }
    }
    await this.pending.load();
    if (this.pending.isEmpty) return;
    await this.pending.settleAll();
    await this.pending.persist();
  }

  /** Backends about to be read, each first reverted where a revert is pending. */
  private async settled(readers: Backend[]): Promise<Backend[]> {
    if (!this.pending.isEmpty) await Promise.all(readers.map((b) => this.pending.settle(b)));
    return readers;
  }

  /** Compacts every backend in turn; `done` once all are. Rules may set their own batch size. */
  async compact(revision: number, batchSize: number, deadline: number): Promise<CompactResult> {
    const t = this.current;
    if (t.isSingle) return this.defaultBackend.compact(revision, batchSize, deadline);
    const batchOf = new Map<Backend, number>();
    for (const rule of t.document.backends) {
      if (rule.compactBatchSize) batchOf.set(t.backends.get(rule.name)!, rule.compactBatchSize);
    }
    let deleted = 0;
    let done = true;
    for (const b of t.all()) {
      if (Date.now() >= deadline) return { deleted, done: false };
      const r = await b.compact(revision, batchOf.get(b) ?? batchSize, deadline);
      deleted += r.deleted;
      done &&= r.done;
    }
    return { deleted, done };
  }

  getMeta(name: string): Promise<Buffer | undefined> {
    return this.defaultBackend.getMeta(name);
  }

  leases(): Promise<LeaseRow[]> {
    return this.defaultBackend.leases();
  }

  async leasedKeys(): Promise<{ key: Buffer; lease: string }[]> {
    const t = this.current;
    if (t.isSingle) return this.defaultBackend.leasedKeys();
    return (await Promise.all(t.all().map((b) => b.leasedKeys()))).flat();
  }

  async sizeBytes(): Promise<number> {
    const sizes = await Promise.all(this.current.all().map((b) => b.sizeBytes()));
    return sizes.reduce((a, b) => a + b, 0);
  }
}

/** The persisted topology; it was valid when saved, so a failure here means the meta value was damaged. */
export async function parseSavedTopology(saved: Buffer, where: string): Promise<TopologyDocument> {
  // the validator compiles the whole schema: loaded only when a topology was saved
  let parsed: unknown;
  try {
    parsed = JSON.parse(saved.toString('utf8'));
  } catch (err) {
    throw new Error(`${where}: the saved topology (meta "${META_TOPOLOGY}") is not JSON: ${(err as Error).message}`);
  }
  const { validateTopology, formatIssue } = await import('../topology/validate.js');
  const v = validateTopology(parsed);
  if (!v.ok) throw new Error(`${where}: the saved topology (meta "${META_TOPOLOGY}") is invalid: ${v.issues.map(formatIssue).join('; ')}`);
  return v.value;
}

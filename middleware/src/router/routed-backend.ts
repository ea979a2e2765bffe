/**
 * A `Backend` over the route table: every request is sent to the backends that own its keys and their
 * answers are merged, so the store above sees one revisioned log (docs/architecture.md, "The revision model").
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
import { META } from '../backends/meta.js';
import { isMovable, type MovableBackend } from '../backends/movable.js';
import { mergeByKey, mergeByRevision } from './merge.js';
import { changesAcross, countAcross, latestAcross, rangeAcross, type ReadPlan } from './migration-reads.js';
import { decodeMigrationState, type SourceRecord } from './migration-state.js';
import { RouteTable } from './route-table.js';
import { Lock } from '../backends/sql/lock.js';
import { PendingReverts } from './pending-reverts.js';
import { RoutedTxn } from './routed-txn.js';


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
  /** Held by the migration mover for each batch and by a topology change for its whole apply. */
  readonly migrationLock = new Lock();
  /** Emptied retired backends, closed a little later (a read that began before may still use them). */
  private readonly retiring = new Set<Backend>();

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
    const saved = await this.defaultBackend.getMeta(META.topology);
    if (!saved) return;
    const doc = await parseSavedTopology(saved, this.defaultBackend.description);
    const state = decodeMigrationState(await this.defaultBackend.getMeta(META.migrations), this.defaultBackend.description);
    if (doc.backends.length === 0 && state.sources.length === 0) return;
    // backends no rule routes to any more but still holding keys being moved out (a migration in progress)
    const retiredRules = state.sources.flatMap((s, i) => (s.rule ? [{ ...s.rule, name: `${RETIRED_RULE}${i}` }] : []));
    let backends: Map<string, Backend>;
    try {
      backends = await openRuleBackends([...doc.backends, ...retiredRules], this.factory);
    } catch (err) {
      throw new BackendUnavailableError(
        `${(err as Error).message}; it belongs to the topology in effect (or to a migration in progress) and may hold data, so the middleware does not start without it`,
        { cause: err },
      );
    }
    const sources = new Map<Backend, SourceRecord>();
    state.sources.forEach((s, i) => {
      const b = s.rule ? backends.get(`${RETIRED_RULE}${i}`) : s.route === '' ? this.defaultBackend : backends.get(s.route!);
      if (b) sources.set(b, s);
    });
    for (const r of retiredRules) backends.delete(r.name);
    this.current = new RouteTable(doc, this.defaultBackend, backends, sources);
  }

  /** A retired migration source that is empty now: closed once the reads that may be using it are done. */
  retire(backend: Backend): void {
    this.retiring.add(backend);
    setTimeout(() => {
      if (this.retiring.delete(backend)) void backend.close().catch(() => undefined);
    }, RETIRE_GRACE_MS).unref();
  }

  async close(): Promise<void> {
    this.opened = false;
    const retiring = [...this.retiring];
    this.retiring.clear();
    await Promise.allSettled([...this.current.all().slice(1), ...retiring].map((b) => b.close()));
    await this.defaultBackend.close();
  }

  async maxRevision(): Promise<number> {
    const t = this.current;
    if (t.isSingle) return this.defaultBackend.maxRevision();
    return Math.max(...(await Promise.all(t.all().map((b) => b.maxRevision()))));
  }

  /** What a read of [start, end) consults while a migration runs (migration-reads.ts). */
  private async planFor(t: RouteTable, start: Buffer, end: Buffer | undefined): Promise<ReadPlan> {
    const owners = await this.settle(t.router.backendsFor(start, end).map((n) => t.byRouteName(n)!));
    // a source that alone owns the range holds only its own keys there: reading it as the owner is enough
    const only = owners.length === 1 ? owners[0] : undefined;
    const sources = await this.settle([...t.sources.keys()].filter((b) => b !== only));
    return { sources: sources as MovableBackend[], owners };
  }

  async range(q: RangeQuery): Promise<KeyRow[]> {
    const t = this.current;
    if (t.isSingle) return this.defaultBackend.range(q);
    if (t.migrating) return rangeAcross(await this.planFor(t, q.start, q.end), q);
    const readers = await this.settle(t.readersOf(q.start, q.end));
    if (readers.length === 1) return readers[0]!.range(q);
    return mergeByKey(await Promise.all(readers.map((b) => b.range(q))), q.limit);
  }

  async count(start: Buffer, end: Buffer | undefined, revision: number): Promise<number> {
    const t = this.current;
    if (t.isSingle) return this.defaultBackend.count(start, end, revision);
    if (t.migrating) return countAcross(await this.planFor(t, start, end), start, end, revision);
    const readers = await this.settle(t.readersOf(start, end));
    if (readers.length === 1) return readers[0]!.count(start, end, revision);
    const counts = await Promise.all(readers.map((b) => b.count(start, end, revision)));
    return counts.reduce((a, b) => a + b, 0);
  }

  async changes(from: number, to: number, limit: number): Promise<ChangeRow[]> {
    const t = this.current;
    if (t.isSingle) return this.defaultBackend.changes(from, to, limit);
    if (t.migrating) {
      const plan = { sources: (await this.settle([...t.sources.keys()])) as MovableBackend[], owners: await this.settle(t.named().map(([, b]) => b)) };
      return changesAcross(plan, from, to, limit);
    }
    const all = await this.settle(t.all());
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

  /** Route names (as the routing in effect names them) with a revert still pending, among `routes`. */
  pendingIn(routes: readonly string[]): string[] {
    if (this.pending.isEmpty) return [];
    const named = this.pending.names();
    return routes.filter((n) => named.has(n));
  }

  /**
   * Carries out the reverts pending in these routes now and persists the shorter list; throws (naming the
   * route and its database) while one cannot be done. A topology change calls it for every route it removes
   * or points at another database: the list names routes, so a revert left pending across such a change
   * would be done in the wrong database, or never, while the migration copied the rows it should remove.
   */
  async settleRoutes(routes: readonly string[]): Promise<void> {
    const names = this.pendingIn(routes);
    if (names.length === 0) return;
    for (const name of names) {
      const b = this.current.byRouteName(name);
      if (!b) continue;
      try {
        await this.pending.settle(b);
      } catch (err) {
        throw new BackendUnavailableError(
          `a write that did not commit everywhere is still to be reverted in rule "${name || 'default'}" (${b.description}), which fails: ${(err as Error).message}`,
          { cause: err },
        );
      }
    }
    await this.pending.persist();
  }

  /**
   * Backends about to be read, each first reverted where a revert is pending (reads here; the migration
   * mover before it reads and copies, so it moves only settled rows).
   */
  async settle(readers: Backend[]): Promise<Backend[]> {
    if (!this.pending.isEmpty) await Promise.all(readers.map((b) => this.pending.settle(b)));
    return readers;
  }

  /**
   * Compacts every backend in turn; `done` once all are. Rules may set their own batch size. While keys move,
   * nothing at or after the migration's start is compacted: a target's tombstone is what hides the copy a
   * source still holds (compaction resumes in full at the next compaction after the migration).
   */
  async compact(revision: number, batchSize: number, deadline: number): Promise<CompactResult> {
    const t = this.current;
    if (t.isSingle) return this.defaultBackend.compact(revision, batchSize, deadline);
    if (t.migrating) revision = Math.min(revision, ...[...t.sources.values()].map((s) => s.since - 1));
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
    const all = (await Promise.all(t.all().map((b) => b.leasedKeys()))).flat();
    if (!t.migrating) return all;
    // a key being moved may be listed by its source with a version the target has since replaced
    const out: { key: Buffer; lease: string }[] = [];
    const seen = new Set<string>();
    for (const k of all) {
      const id = k.key.toString('latin1');
      if (seen.has(id)) continue;
      seen.add(id);
      const newest = await this.latest(k.key);
      if (newest && !newest.deleted && newest.lease !== '0') out.push({ key: k.key, lease: newest.lease });
    }
    return out;
  }

  /**
   * Newest row of `key` (tombstones included) wherever it is while a migration runs: its sources, then its
   * owner (migration-reads.ts explains the order). Undefined outside a migration or for a key never written.
   */
  async latest(key: Buffer): Promise<KeyRow | undefined> {
    const t = this.current;
    const owner = t.ownerOf(key);
    const order = [...t.sources.keys(), owner].filter(isMovable);
    return latestAcross(await this.settle(order) as MovableBackend[], key);
  }

  async sizeBytes(): Promise<number> {
    const sizes = await Promise.all(this.current.all().map((b) => b.sizeBytes()));
    return sizes.reduce((a, b) => a + b, 0);
  }
}

/** How long an emptied retired backend stays open for reads that began before it was emptied. */
const RETIRE_GRACE_MS = 30_000;

/** Names given to retired migration sources while they are reopened at start (never a rule's: rule names have no spaces). */
const RETIRED_RULE = 'retired source ';

/** The persisted topology; it was valid when saved, so a failure here means the meta value was damaged. */
export async function parseSavedTopology(saved: Buffer, where: string): Promise<TopologyDocument> {
  // the validator compiles the whole schema: loaded only when a topology was saved
  let parsed: unknown;
  try {
    parsed = JSON.parse(saved.toString('utf8'));
  } catch (err) {
    throw new Error(`${where}: the saved topology (meta "${META.topology}") is not JSON: ${(err as Error).message}`);
  }
  const { validateTopology, formatIssue } = await import('../topology/validate.js');
  const v = validateTopology(parsed);
  if (!v.ok) throw new Error(`${where}: the saved topology (meta "${META.topology}") is invalid: ${v.issues.map(formatIssue).join('; ')}`);
  return v.value;
}

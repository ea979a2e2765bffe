/**
 * The write transaction of the routed backend: a transaction is begun on a backend the first time it is
 * touched (reads included, so they see the transaction's own writes) and they all end together.
 *
 * A write that changes one database commits there alone. A write that changes several is made atomic by a
 * durable intent (pending-reverts.ts, in the default backend's meta store): the default backend commits
 * first, with the intent naming the revisions and the databases; then the other databases commit, together; then
 * the intent is cleared and only then does the write count as committed. If a commit fails, the databases
 * that committed (and the one whose outcome is unknown) are reverted at once, or before their next use when
 * they cannot be reached; a crash between the commits is reverted at the next start: never half-applied.
 */
import { inWriteTxn, BackendUnavailableError, DeferredWriteError, WriteRolledBackError, type Backend, type KeyRow, type LeaseRow, type RangeQuery, type WriteTxn } from '../backends/backend.js';
import { META, metaRevision } from '../backends/meta.js';
import { isMovable, type MovableBackend } from '../backends/movable.js';
import { mergeByKey } from './merge.js';
import { latestAcross } from './migration-reads.js';
import type { PendingReverts, WriteIntent } from './pending-reverts.js';
import type { RouteTable } from './route-table.js';

interface Begun {
  backend: Backend;
  tx: WriteTxn;
}

function newer(a: KeyRow | undefined, b: KeyRow | undefined): KeyRow | undefined {
  if (!a) return b;
  if (!b) return a;
  return b.modRevision > a.modRevision ? b : a;
}

export class RoutedTxn implements WriteTxn {
  /** Transactions begun, by backend, in the order they were begun. */
  private readonly open = new Map<Backend, Promise<WriteTxn>>();
  /** Backends this transaction changed (rows, meta values, leases). */
  private readonly changed = new Set<Backend>();
  private from = Number.MAX_SAFE_INTEGER;
  private to = 0;
  private ended = false;
  /** Set by `holdWrites`. */
  private holding = false;
  /** Keys the next transaction will read, by owner (`readAheadAfterCommit`). */
  private nextKeys: Map<Backend, Buffer[]> | undefined;

  constructor(
    private readonly table: RouteTable,
    private readonly pending: PendingReverts,
  ) {}

  private txFor(backend: Backend): Promise<WriteTxn> {
    if (this.ended) throw new Error('write transaction already ended: begin() a new one');
    let t = this.open.get(backend);
    if (!t) {
      // a database with rows still to take back is reverted first (and stays unusable while it cannot be)
      t = this.pending.settle(backend).then(async () => {
        const tx = await backend.begin();
        if (this.holding) tx.holdWrites?.();
        return tx;
      });
      // a failed begin is reported to the caller that touched it; ending the transaction must not throw it again
      t.catch(() => undefined);
      this.open.set(backend, t);
    }
    return t;
  }

  private async changing(backend: Backend): Promise<WriteTxn> {
    const tx = await this.txFor(backend);
    this.changed.add(backend);
    return tx;
  }

  /**
   * While keys move, a key's newest row may still be in a migration source: the owner's transaction is begun
   * first (so the mover cannot commit a copy into it meanwhile), then the sources are read; newest wins.
   */
  async latest(key: Buffer): Promise<KeyRow | undefined> {
    const owner = this.table.ownerOf(key);
    const own = await (await this.txFor(owner)).latest(key);
    if (!this.table.migrating) return own;
    const elsewhere = await latestAcross(await this.sourcesBesides(owner), key);
    return newer(own, elsewhere);
  }

  /** Passes each key to its owner's transaction, where that backend reads ahead (see `WriteTxn.prefetch`). */
  async prefetch(keys: Buffer[]): Promise<void> {
    await Promise.all(
      [...this.byOwner(keys)].map(async ([owner, ks]) => {
        // only a backend with reads ahead is begun here; the others are begun by the request that touches them
        if (!owner.readsAhead) return;
        const tx = await this.txFor(owner);
        await tx.prefetch?.(ks);
      }),
    );
  }

  async range(q: RangeQuery): Promise<KeyRow[]> {
    if (this.table.migrating) return this.rangeWhileMigrating(q);
    const backends = this.table.readersOf(q.start, q.end);
    const lists = await Promise.all(backends.map(async (b) => (await this.txFor(b)).range(q)));
    return lists.length === 1 ? lists[0]! : mergeByKey(lists, q.limit);
  }

  /** `range` with keys still in migration sources: each such key is settled against its owner's newest row. */
  private async rangeWhileMigrating(q: RangeQuery): Promise<KeyRow[]> {
    const t = this.table;
    const owners = t.router.backendsFor(q.start, q.end).map((n) => t.byRouteName(n)!);
    const all = { ...q, limit: 0 };
    const live = mergeByKey(await Promise.all(owners.map(async (b) => (await this.txFor(b)).range(all))), 0);
    const byKey = new Map(live.map((r) => [r.key.toString('latin1'), r]));
    for (const source of await this.sourcesBesides()) {
      for (const row of await source.moves.rangeWithTombstones(all)) {
        const owner = t.ownerOf(row.key);
        if (owner === source) continue; // its own keys were read in its transaction
        const own = await (await this.txFor(owner)).latest(row.key);
        if (own && own.modRevision >= row.modRevision) continue;
        const id = row.key.toString('latin1');
        const seen = byKey.get(id);
        if (seen && seen.modRevision >= row.modRevision) continue;
        if (row.deleted) byKey.delete(id);
        else byKey.set(id, row);
      }
    }
    const out = [...byKey.values()].sort((a, b) => Buffer.compare(a.key, b.key));
    return q.limit > 0 ? out.slice(0, q.limit) : out;
  }

  /** Migration sources other than `except`, each reverted first where a revert is pending. */
  private async sourcesBesides(except?: Backend): Promise<MovableBackend[]> {
    const sources = [...this.table.sources.keys()].filter((b): b is MovableBackend => b !== except && isMovable(b));
    await Promise.all(sources.map((b) => this.pending.settle(b)));
    return sources;
  }

  async insert(rows: KeyRow[]): Promise<void> {
    const groups = new Map<Backend, KeyRow[]>();
    for (const row of rows) {
      const b = this.table.ownerOf(row.key);
      const g = groups.get(b);
      if (g) g.push(row);
      else groups.set(b, [row]);
      if (row.modRevision < this.from) this.from = row.modRevision;
      if (row.modRevision > this.to) this.to = row.modRevision;
    }
    for (const [b, g] of groups) await (await this.changing(b)).insert(g);
  }

  /** Passed on at commit to the transactions of the keys' owners that this one changed. */
  readAheadAfterCommit(keys: Buffer[]): void {
    this.nextKeys = this.byOwner(keys);
  }

  /** `keys` grouped by the backend that owns each. */
  private byOwner(keys: Buffer[]): Map<Backend, Buffer[]> {
    const groups = new Map<Backend, Buffer[]>();
    for (const key of keys) {
      const owner = this.table.ownerOf(key);
      const g = groups.get(owner);
      if (g) g.push(key);
      else groups.set(owner, [key]);
    }
    return groups;
  }

  /** Every transaction begun, now and later, holds its inserted rows until commit (see `WriteTxn.holdWrites`). */
  holdWrites(): void {
    this.holding = true;
    for (const t of this.open.values()) void t.then((tx) => tx.holdWrites?.(), () => undefined);
  }

  async setMeta(name: string, value: Buffer): Promise<void> {
    await (await this.changing(this.table.defaultBackend)).setMeta(name, value);
  }

  /** A locked meta value (the leader fence) counts as a change: its lock is held until the default backend commits. */
  async lockMeta(name: string): Promise<Buffer | undefined> {
    return (await this.changing(this.table.defaultBackend)).lockMeta(name);
  }

  async putLease(lease: LeaseRow): Promise<void> {
    await (await this.changing(this.table.defaultBackend)).putLease(lease);
  }

  async deleteLease(id: string): Promise<void> {
    await (await this.changing(this.table.defaultBackend)).deleteLease(id);
  }

  async commit(): Promise<void> {
    const begun = await this.begun();
    this.ended = true;
    const writers = begun.filter((b) => this.changed.has(b.backend));
    for (const w of writers) {
      const keys = this.nextKeys?.get(w.backend);
      if (keys) w.tx.readAheadAfterCommit?.(keys);
    }
    // transactions that only read hold locks and nothing to keep
    await Promise.all(begun.filter((b) => !this.changed.has(b.backend)).map((b) => b.tx.rollback()));
    if (writers.length === 0) return;
    if (writers.length === 1) {
      const only = writers[0]!;
      try {
        await only.tx.commit();
      } catch (err) {
        if (err instanceof DeferredWriteError) throw err; // certainly not committed: the caller retries
        if (only.backend === this.table.defaultBackend || this.to === 0) {
          throw new BackendUnavailableError(`${only.backend.description}: commit failed (the write may or may not have committed): ${(err as Error).message}`, { cause: err });
        }
        await this.takeBack(only.backend.description, err, { from: this.from, to: this.to, backends: [this.table.nameOf(only.backend)] }, true);
      }
      return;
    }
    await this.commitAcross(writers);
  }

  /** The intent protocol (see the file comment) over the transactions that changed something. */
  private async commitAcross(writers: Begun[]): Promise<void> {
    const def = this.table.defaultBackend;
    let first = writers.find((w) => w.backend === def);
    const others = writers.filter((w) => w.backend !== def);
    const intent: WriteIntent = { from: this.from, to: this.to, backends: writers.map((w) => this.table.nameOf(w.backend)) };
    if (!intent.backends.includes('')) intent.backends.push('');
    try {
      if (!first) {
        // the intent lives in the default backend, which this write did not touch yet
        first = { backend: def, tx: await this.pending.settle(def).then(() => def.begin()) };
      }
      const hwm = metaRevision(await first.tx.lockMeta(META.revisionHighWater));
      if (intent.to > hwm) await first.tx.setMeta(META.revisionHighWater, Buffer.from(String(intent.to)));
      await first.tx.setMeta(META.writeIntent, this.pending.encode(intent));
    } catch (err) {
      await Promise.all([first?.tx.rollback(), ...others.map((o) => o.tx.rollback())]);
      throw new WriteRolledBackError(`${def.description}: cannot record a write across ${writers.length} databases: ${(err as Error).message}`, { cause: err });
    }
    try {
      await first.tx.commit();
    } catch (err) {
      await Promise.all(others.map((o) => o.tx.rollback()));
      if (err instanceof DeferredWriteError) throw err; // nothing committed anywhere: the caller retries
      // the intent may have committed: recovery (before the next write) reverts it if so
      throw new BackendUnavailableError(`${def.description}: commit failed (the write across ${writers.length} databases may or may not have committed): ${(err as Error).message}`, { cause: err });
    }
    // The other databases commit at once, not in turn: a batch then waits for its slowest database, not for
    // the sum of them. The intent is durable already, so whatever fails, every one of them is taken back
    // (where it committed, and where the outcome is unknown; a revert where nothing committed finds nothing).
    const results = await Promise.allSettled(others.map((o) => o.tx.commit()));
    const failed = results.findIndex((r) => r.status === 'rejected');
    if (failed >= 0) {
      const taken = { ...intent, backends: [this.table.nameOf(def), ...others.map((o) => this.table.nameOf(o.backend))] };
      await this.takeBack(others[failed]!.backend.description, (results[failed] as PromiseRejectedResult).reason, taken, false);
    }
    try {
      await inWriteTxn(def, async (tx) => tx.setMeta(META.writeIntent, this.pending.encode()));
    } catch (err) {
      // everything committed; the durable intent still names the write, so a crash now would revert it
      this.pending.add(intent);
      throw new BackendUnavailableError(
        `${def.description}: cannot complete a write across ${writers.length} databases (it is reverted before the next use of them): ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  /**
   * A commit failed in `failed`: the write's rows are taken back in `entry.backends` (where it committed,
   * and where the outcome is unknown), now where possible and before their next use otherwise. The intent
   * is made durable first (`record`: it is not yet), so the outcome is known: rolled back.
   */
  private async takeBack(failed: string, err: unknown, entry: WriteIntent, record: boolean): Promise<never> {
    const reason = `${failed}: commit failed: ${(err as Error).message}`;
    if (record) {
      try {
        await inWriteTxn(this.table.defaultBackend, async (tx) => {
          // reverted revisions are never handed out again, even when they were the newest
          const hwm = metaRevision(await tx.lockMeta(META.revisionHighWater));
          if (entry.to > hwm) await tx.setMeta(META.revisionHighWater, Buffer.from(String(entry.to)));
          await tx.setMeta(META.writeIntent, this.pending.encode(entry));
        });
      } catch {
        throw new BackendUnavailableError(`${reason} (the write may or may not have committed)`, { cause: err });
      }
    }
    this.pending.add(entry);
    await this.pending.settleAll();
    const left = this.pending.isEmpty ? '' : '; databases that cannot be reached are reverted before their next use';
    throw new WriteRolledBackError(`${reason}; the write was rolled back${left}`, { cause: err });
  }

  /** Rolls back every transaction begun. */
  async rollback(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    const results = await Promise.allSettled(this.open.values());
    await Promise.all(results.map((r) => (r.status === 'fulfilled' ? r.value.rollback() : undefined)));
  }

  /** Every transaction begun; if one could not begin, rolls back the others and throws its error. */
  private async begun(): Promise<Begun[]> {
    const backends = [...this.open.keys()];
    const results = await Promise.allSettled(this.open.values());
    const failure = results.find((r) => r.status === 'rejected');
    if (failure) {
      await this.rollback();
      throw (failure as PromiseRejectedResult).reason;
    }
    return results.map((r, i) => ({ backend: backends[i]!, tx: (r as PromiseFulfilledResult<WriteTxn>).value }));
  }
}


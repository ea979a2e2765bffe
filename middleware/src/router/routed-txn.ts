/**
 * The write transaction of the routed backend: a transaction is begun on a backend the first time it is
 * touched (reads included, so they see the transaction's own writes) and they all end together.
 */
import type { Backend, KeyRow, LeaseRow, RangeQuery, WriteTxn } from '../backends/backend.js';
import { BackendUnavailableError } from '../backends/backend.js';
import { mergeByKey } from './merge.js';
import type { RouteTable } from './route-table.js';

export class RoutedTxn implements WriteTxn {
  /** Transactions begun, by backend, in the order they were begun. */
  private readonly open = new Map<Backend, Promise<WriteTxn>>();
  private ended = false;

  constructor(private readonly table: RouteTable) {}

  private txFor(backend: Backend): Promise<WriteTxn> {
    if (this.ended) throw new Error('write transaction already ended: begin() a new one');
    let t = this.open.get(backend);
    if (!t) {
      t = backend.begin();
      // a failed begin is reported to the caller that touched it; ending the transaction must not throw it again
      t.catch(() => undefined);
      this.open.set(backend, t);
    }
    return t;
  }

  async latest(key: Buffer): Promise<KeyRow | undefined> {
    return (await this.txFor(this.table.ownerOf(key))).latest(key);
  }

  async range(q: RangeQuery): Promise<KeyRow[]> {
    const backends = this.table.readersOf(q.start, q.end);
    const lists = await Promise.all(backends.map(async (b) => (await this.txFor(b)).range(q)));
    return lists.length === 1 ? lists[0]! : mergeByKey(lists, q.limit);
  }

  async insert(rows: KeyRow[]): Promise<void> {
    const groups = new Map<Backend, KeyRow[]>();
    for (const row of rows) {
      const b = this.table.ownerOf(row.key);
      const g = groups.get(b);
      if (g) g.push(row);
      else groups.set(b, [row]);
    }
    for (const [b, g] of groups) await (await this.txFor(b)).insert(g);
  }

  async setMeta(name: string, value: Buffer): Promise<void> {
    await (await this.txFor(this.table.defaultBackend)).setMeta(name, value);
  }

  async lockMeta(name: string): Promise<Buffer | undefined> {
    return (await this.txFor(this.table.defaultBackend)).lockMeta(name);
  }

  async putLease(lease: LeaseRow): Promise<void> {
    await (await this.txFor(this.table.defaultBackend)).putLease(lease);
  }

  async deleteLease(id: string): Promise<void> {
    await (await this.txFor(this.table.defaultBackend)).deleteLease(id);
  }

  /**
   * Commits every transaction begun, the default backend (meta, leases) last. If one fails, those not yet
   * committed are rolled back and the error says which backend failed and that others may have committed.
   */
  async commit(): Promise<void> {
    const entries = [...this.open.entries()].sort(([a], [b]) => Number(a === this.table.defaultBackend) - Number(b === this.table.defaultBackend));
    const txs = await this.begun();
    this.ended = true;
    const ordered = entries.map(([b]) => ({ backend: b, tx: txs.get(b)! }));
    for (let i = 0; i < ordered.length; i++) {
      try {
        await ordered[i]!.tx.commit();
      } catch (err) {
        await Promise.all(ordered.slice(i + 1).map((o) => o.tx.rollback()));
        const committed = i > 0 ? `; ${i} other backend(s) of this batch committed` : '';
        throw new BackendUnavailableError(`${ordered[i]!.backend.description}: commit failed (the write may or may not have committed${committed})`, { cause: err });
      }
    }
  }

  /** Rolls back every transaction begun. */
  async rollback(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    const results = await Promise.allSettled(this.open.values());
    await Promise.all(results.map((r) => (r.status === 'fulfilled' ? r.value.rollback() : undefined)));
  }

  /** Every transaction begun; if one could not begin, rolls back the others and throws its error. */
  private async begun(): Promise<Map<Backend, WriteTxn>> {
    const backends = [...this.open.keys()];
    const results = await Promise.allSettled(this.open.values());
    const failure = results.find((r) => r.status === 'rejected');
    if (failure) {
      await this.rollback();
      throw (failure as PromiseRejectedResult).reason;
    }
    return new Map(results.map((r, i) => [backends[i]!, (r as PromiseFulfilledResult<WriteTxn>).value]));
  }
}

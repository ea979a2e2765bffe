/**
 * One write batch over several backends: a transaction is opened on a backend the first time the batch
 * touches it and all of them are committed together at the end. Commits are not atomic across databases
 * (no two-phase commit): when one fails after another committed, the caller gets `BackendUnavailableError`
 * and the store's in-doubt resolution reads back what each database actually holds, as it does for a
 * single database whose COMMIT failed.
 */
import { BackendUnavailableError, type Backend, type KeyRow, type LeaseRow, type RangeQuery, type WriteTxn } from '../backends/backend.js';
import { mergeByKey } from './merge.js';
import type { RouteTable } from './route-table.js';

/** Thrown inside a child transaction to make its backend roll back (an Error: backends inspect what they catch). */
class RollbackRequested extends Error {
  constructor() {
    super('rolled back: another part of the write batch failed');
    this.name = 'RollbackRequested';
  }
}

/** A backend transaction held open until the batch decides. */
interface OpenTxn {
  tx: WriteTxn;
  /** Commits (true) or rolls back (false); resolves once the backend has finished. */
  finish(commit: boolean): Promise<void>;
}

function openTxn(backend: Backend): Promise<OpenTxn> {
  return new Promise((resolveOpen, rejectOpen) => {
    let decide!: (commit: boolean) => void;
    const decision = new Promise<boolean>((r) => (decide = r));
    let opened = false;
    const done = backend.write(async (tx) => {
      opened = true;
      resolveOpen({
        tx,
        finish: async (commit) => {
          decide(commit);
          try {
            await done;
          } catch (err) {
            if (commit) throw err;
          }
        },
      });
      if (!(await decision)) throw new RollbackRequested();
    });
    done.catch((err: unknown) => {
      if (!opened) rejectOpen(err);
    });
  });
}

export class RoutedWriteTxn implements WriteTxn {
  private readonly open = new Map<Backend, Promise<OpenTxn>>();

  constructor(private readonly table: RouteTable) {}

  private txFor(backend: Backend): Promise<WriteTxn> {
    let t = this.open.get(backend);
    if (!t) {
      t = openTxn(backend);
      this.open.set(backend, t);
    }
    return t.then((o) => o.tx);
  }

  async latest(key: Buffer): Promise<KeyRow | undefined> {
    return (await this.txFor(this.table.ownerOf(key))).latest(key);
  }

  async range(q: RangeQuery): Promise<KeyRow[]> {
    const backends = this.table.readersOf(q.start, q.end);
    const lists = await Promise.all(backends.map(async (b) => (await this.txFor(b)).range(q)));
    return mergeByKey(lists, q.limit);
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
   * Commits every opened transaction, the default backend (meta, leases) last. If one fails, those not yet
   * committed are rolled back and the error says which backend failed and that others may have committed.
   */
  async commit(): Promise<void> {
    const entries = [...this.open.entries()].sort(([a], [b]) => Number(a === this.table.defaultBackend) - Number(b === this.table.defaultBackend));
    const opened = await this.settle(entries.map(([, t]) => t));
    for (let i = 0; i < opened.length; i++) {
      try {
        await opened[i]!.finish(true);
      } catch (err) {
        await Promise.all(opened.slice(i + 1).map((o) => o.finish(false)));
        const failed = entries[i]![0].description;
        const committed = i > 0 ? `; ${i} other backend(s) of this batch committed` : '';
        throw new BackendUnavailableError(`${failed}: commit failed (the write may or may not have committed${committed})`, { cause: err });
      }
    }
  }

  /** Rolls back every opened transaction. */
  async rollback(): Promise<void> {
    const results = await Promise.allSettled([...this.open.values()]);
    await Promise.all(results.map((r) => (r.status === 'fulfilled' ? r.value.finish(false) : undefined)));
  }

  /** Waits for every transaction to open; if one could not, rolls back the others and throws its error. */
  private async settle(pending: Promise<OpenTxn>[]): Promise<OpenTxn[]> {
    const results = await Promise.allSettled(pending);
    const failure = results.find((r) => r.status === 'rejected');
    if (failure) {
      await Promise.all(results.map((r) => (r.status === 'fulfilled' ? r.value.finish(false) : undefined)));
      throw (failure as PromiseRejectedResult).reason;
    }
    return results.map((r) => (r as PromiseFulfilledResult<OpenTxn>).value);
  }
}

/**
 * Writes that must be taken back in some databases before those databases are used again: the rows of a
 * write across databases that did not commit in all of them, and the rows of a write whose commit in one
 * database failed with an unknown outcome. The list is durable (meta `write_intent` of the default backend,
 * written before any such write counts as failed) and kept here in memory; a database with a pending
 * revert is reverted before its next read or write, and while that fails only requests touching it fail.
 * Reverts are idempotent (revisions are never reused), so an entry cleared late is only retried.
 */
import { inWriteTxn, type Backend } from '../backends/backend.js';
import { META } from '../backends/meta.js';
import { logger } from '../log.js';
import { topologyMetrics } from './metrics.js';
import type { RouteTable } from './route-table.js';

const log = logger.child({ component: 'router' });

/** Rows with from <= revision <= to are reverted in every database named (route names, '' = default). */
export interface WriteIntent {
  from: number;
  to: number;
  backends: string[];
}

export class PendingReverts {
  private entries: WriteIntent[] = [];
  /** One revert run per backend at a time (reads and writes may ask together). */
  private readonly running = new Map<Backend, Promise<void>>();
  /** Rules the metric has reported, so a rule with nothing left reads 0 rather than vanishing. */
  private readonly reported = new Set<string>();

  constructor(private readonly table: () => RouteTable) {}

  get isEmpty(): boolean {
    return this.entries.length === 0;
  }

  /** The durable form of the list with `extra` added. */
  encode(extra?: WriteIntent): Buffer {
    const all = extra ? [...this.entries, extra] : this.entries;
    return all.length === 0 ? Buffer.alloc(0) : Buffer.from(JSON.stringify(all));
  }

  /** The route names some entry still names. */
  names(): Set<string> {
    return new Set(this.entries.flatMap((e) => e.backends));
  }

  add(entry: WriteIntent): void {
    if (entry.backends.length > 0) this.entries.push({ ...entry, backends: [...entry.backends] });
    this.report();
  }

  /** `harikube_pending_reverts`: the entries naming each rule. */
  private report(): void {
    const counts = new Map<string, number>([...this.reported].map((rule) => [rule, 0]));
    for (const e of this.entries) for (const name of e.backends) counts.set(name || 'default', (counts.get(name || 'default') ?? 0) + 1);
    for (const [rule, n] of counts) {
      topologyMetrics.pendingReverts.set({ rule }, n);
      this.reported.add(rule);
    }
  }

  /** Reads the durable list (a value written by an older version holds one entry, not a list). */
  async load(): Promise<void> {
    const t = this.table();
    const saved = await t.defaultBackend.getMeta(META.writeIntent);
    if (!saved || saved.length === 0) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(saved.toString('utf8'));
    } catch (err) {
      throw new Error(`${t.defaultBackend.description}: meta "${META.writeIntent}" is not JSON: ${(err as Error).message}`);
    }
    for (const e of Array.isArray(parsed) ? (parsed as WriteIntent[]) : [parsed as WriteIntent]) {
      const known = this.entries.find((x) => x.from === e.from && x.to === e.to);
      if (!known) this.add(e);
    }
  }

  /** Reverts what is pending in `backend`; throws (the backend's error) while it cannot. */
  async settle(backend: Backend): Promise<void> {
    if (this.entries.length === 0) return;
    const name = this.table().nameOf(backend);
    if (!this.entries.some((e) => e.backends.includes(name))) return;
    let run = this.running.get(backend);
    if (!run) {
      run = this.revertIn(backend, name).finally(() => this.running.delete(backend));
      this.running.set(backend, run);
    }
    await run;
  }

  private async revertIn(backend: Backend, name: string): Promise<void> {
    for (const e of this.entries.filter((x) => x.backends.includes(name))) {
      await backend.revert(e.from, e.to);
      e.backends = e.backends.filter((n) => n !== name);
      this.report();
      log.warn('reverted the rows of a write that did not commit everywhere', { backend: backend.description, from: e.from, to: e.to });
    }
    this.entries = this.entries.filter((e) => e.backends.length > 0);
  }

  /** Tries every pending revert; those whose database fails stay pending. */
  async settleAll(): Promise<void> {
    const t = this.table();
    for (const name of new Set(this.entries.flatMap((e) => e.backends))) {
      const b = t.byRouteName(name);
      if (!b) {
        log.error('a pending revert names a backend the topology does not have; it stays pending', { backend: name });
        continue;
      }
      try {
        await this.settle(b);
      } catch (err) {
        log.warn('pending revert not done yet; requests for that backend fail until it is', { backend: b.description, error: err });
      }
    }
  }

  /** Writes the list as it is now (outside any transaction of the default backend). */
  async persist(): Promise<void> {
    const value = this.encode();
    await inWriteTxn(this.table().defaultBackend, async (tx) => tx.setMeta(META.writeIntent, value));
  }
}

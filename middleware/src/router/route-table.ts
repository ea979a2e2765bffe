/**
 * The routing in effect: which backend owns a key and which backends a range must read. Immutable; a
 * topology change builds a new table and swaps it in between two write batches.
 */
import type { Backend } from '../backends/backend.js';
import type { BackendRule, TopologyDocument } from '../topology/schema.js';
import type { SourceRecord } from './migration-state.js';
import { DEFAULT_BACKEND, Router } from './router.js';

/** What makes two rules the same backend: a rule whose connection settings change is a new backend. */
export function backendIdentity(rule: BackendRule): string {
  return JSON.stringify([rule.endpoint, rule.backendTLS ?? null, rule.connectionPool ?? null]);
}

/** Route names of retired backends (a NUL: no rule is named so in practice). */
const RETIRED_PREFIX = '\u0000retired:';

export class RouteTable {
  readonly router: Router;
  private readonly byName: Map<string, Backend>;
  /**
   * Backends no rule routes to any more that still hold data (keys, old versions, tombstones): migration
   * sources until the mover has emptied them; reads and watch catch-up consult them meanwhile.
   */
  readonly retired: readonly Backend[];

  constructor(
    readonly document: TopologyDocument,
    readonly defaultBackend: Backend,
    /** The backend of every rule, by rule name. */
    readonly backends: ReadonlyMap<string, Backend>,
    /**
     * Migration sources: backends that may hold keys this table routes elsewhere (migration/, router/migration-reads.ts), in
     * routing or retired. Empty when no migration runs.
     */
    readonly sources: ReadonlyMap<Backend, SourceRecord> = new Map(),
  ) {
    this.router = new Router(document.backends);
    this.byName = new Map(backends);
    this.byName.set(DEFAULT_BACKEND, defaultBackend);
    for (const rule of document.backends) {
      if (!backends.has(rule.name)) throw new Error(`route table: rule "${rule.name}" has no backend`);
    }
    const routed = new Set(this.byName.values());
    this.retired = [...sources.keys()].filter((b) => !routed.has(b));
  }

  /** True while some backend may hold keys it does not own (a migration runs). */
  get migrating(): boolean {
    return this.sources.size > 0;
  }

  /** This table with other migration sources (same routing). */
  withSources(sources: ReadonlyMap<Backend, SourceRecord>): RouteTable {
    return new RouteTable(this.document, this.defaultBackend, this.backends, sources);
  }

  /** A table that routes everything to the default backend. */
  static single(defaultBackend: Backend): RouteTable {
    return new RouteTable({ backends: [] }, defaultBackend, new Map());
  }

  /** True when every request goes to the default backend alone (no rules, nothing retired). */
  get isSingle(): boolean {
    return this.backends.size === 0 && this.retired.length === 0;
  }

  /** The backend that stores `key`. */
  ownerOf(key: Buffer): Backend {
    return this.byName.get(this.router.backendFor(key))!;
  }

  /** Backends a read of [start, end) must consult (`end` undefined: the single key `start`). */
  readersOf(start: Buffer, end: Buffer | undefined): Backend[] {
    const names = this.router.backendsFor(start, end);
    const out = names.map((n) => this.byName.get(n)!);
    return this.retired.length ? [...out, ...this.retired] : out;
  }

  /** Every backend: the default first, then rule order, then retired ones. */
  all(): Backend[] {
    return [this.defaultBackend, ...this.backends.values(), ...this.retired];
  }

  /** The route name of a backend in this table (DEFAULT_BACKEND for the default one); throws for a stranger. */
  nameOf(backend: Backend): string {
    for (const [name, b] of this.byName) if (b === backend) return name;
    const i = this.retired.indexOf(backend);
    if (i >= 0) return `${RETIRED_PREFIX}${i}`;
    throw new Error(`route table: ${backend.description} is not one of its backends`);
  }

  /** The backend of a route name (see `nameOf`), undefined when the table has none by that name. */
  byRouteName(name: string): Backend | undefined {
    if (name.startsWith(RETIRED_PREFIX)) return this.retired[Number(name.slice(RETIRED_PREFIX.length))];
    return this.byName.get(name);
  }

  /** Backends in routing, by name (DEFAULT_BACKEND included). */
  named(): [string, Backend][] {
    return [...this.byName.entries()];
  }
}

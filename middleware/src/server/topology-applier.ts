/**
 * Puts a new topology document into effect (docs/architecture.md, "The topology lifecycle"): opens the backends it adds, finds the
 * backends holding keys the new routing gives to another backend, then, between two write batches, swaps
 * the routing and persists the document together with those migration sources (router/migration-state.ts). From
 * then on writes go to the new owners and the mover (migration/mover.ts) moves the rest online. Keys that
 * would have to move into or out of a backend that cannot take part in a migration (one without `moves`,
 * backends/movable.ts) get the change refused, naming them; the routing in effect stays.
 */
import { inWriteTxn, type Backend } from '../backends/backend.js';
import { META } from '../backends/meta.js';
import { isMovable, movesRefused } from '../backends/movable.js';
import { logger as rootLogger, type Logger } from '../log.js';
import { keyAfter } from '../backends/key-range.js';
import type { Store } from '../mvcc/store.js';
import { parseEndpoint, redactEndpoint, type Endpoint } from '../topology/endpoint.js';
import type { BackendRule, TopologyDocument } from '../topology/schema.js';
import { resolve } from 'node:path';
import { topologyMetrics } from '../router/metrics.js';
import { encodeMigrationState, type SourceRecord } from '../router/migration-state.js';
import { backendIdentity, RouteTable } from '../router/route-table.js';
import { openRuleBackends, type BackendFactory, type RoutedBackend } from '../router/routed-backend.js';
import { DEFAULT_BACKEND } from '../router/router.js';


/** Keys that one change would move from one backend to another. */
export interface KeyMove {
  from: string;
  to: string;
  count: number;
  /** Smallest and largest affected key. */
  first: string;
  last: string;
}

export class TopologyRefusedError extends Error {
  constructor(
    message: string,
    readonly moves: KeyMove[] = [],
    /** Names of the rules the refusal is about (reported to the operator, which attributes it to a TopologyConfig). */
    readonly rules: string[] = [],
  ) {
    super(message);
    this.name = 'TopologyRefusedError';
  }
}

export interface ApplyOutcome {
  /** False when the document equals the topology in effect. */
  changed: boolean;
  added: string[];
  removed: string[];
}

const SCAN_PAGE = 1000;
const ALL_START = Buffer.from([0]);
const TO_END = Buffer.alloc(0);

function label(name: string): string {
  return name === DEFAULT_BACKEND ? 'default backend' : `"${name}"`;
}

/** Where an endpoint's data lives, to tell whether two endpoints are the same database (also `migrate verify`). */
export function location(e: Endpoint): string {
  switch (e.kind) {
    case 'sqlite':
      return `sqlite:${e.path === ':memory:' ? `:memory:${Math.random()}` : resolve(e.path)}`;
    case 'etcd':
      return `etcd:${[...e.hosts].sort().join(',')}`;
    default:
      return `${e.kind}:${e.host.toLowerCase()}:${e.port}/${e.database}`;
  }
}

export interface TopologyApplierOptions {
  store: Store;
  routed: RoutedBackend;
  /** The middleware's --endpoint: no rule may point at the same database. */
  defaultEndpoint: string;
  factory: BackendFactory;
  logger?: Logger;
  /** Called after a topology that moves keys is in effect (the mover starts or picks up the new sources). */
  onMigration?: () => void;
}

export class TopologyApplier {
  private readonly log: Logger;
  private running: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: TopologyApplierOptions) {
    this.log = (opts.logger ?? rootLogger).child({ component: 'topology' });
    topologyMetrics.rules.set(opts.routed.table.document.backends.length);
  }

  /** Applies `doc` (already validated); one change at a time. Throws `TopologyRefusedError` when refused. */
  apply(doc: TopologyDocument, origin: string): Promise<ApplyOutcome> {
    const next = this.running.then(() => this.opts.routed.migrationLock.run(() => this.applyNow(doc, origin)));
    this.running = next.catch(() => undefined);
    return next;
  }

  private async applyNow(doc: TopologyDocument, origin: string): Promise<ApplyOutcome> {
    try {
      const outcome = await this.change(doc, origin);
      topologyMetrics.applies.inc({ result: outcome.changed ? 'applied' : 'unchanged' });
      topologyMetrics.lastApplyFailed.set(0);
      return outcome;
    } catch (err) {
      topologyMetrics.applies.inc({ result: 'refused' });
      topologyMetrics.lastApplyFailed.set(1);
      throw err;
    }
  }

  private async change(doc: TopologyDocument, origin: string): Promise<ApplyOutcome> {
    const { routed, store } = this.opts;
    const old = routed.table;
    if (JSON.stringify(doc) === JSON.stringify(old.document)) return { changed: false, added: [], removed: [] };
    this.checkEndpoints(doc, origin);

    // reuse the backend of every rule whose connection settings are unchanged (a rename keeps its data), and
    // a retired backend still being emptied when a rule names its database again
    const ruleOf = new Map<Backend, BackendRule>();
    for (const r of old.document.backends) ruleOf.set(old.backends.get(r.name)!, r);
    for (const [b, rec] of old.sources) if (rec.rule && !ruleOf.has(b)) ruleOf.set(b, rec.rule);
    const byIdentity = new Map([...ruleOf].map(([b, r]) => [backendIdentity(r), b]));
    const reused = new Map<string, Backend>();
    const toOpen = doc.backends.filter((r) => {
      const b = byIdentity.get(backendIdentity(r));
      if (b) reused.set(r.name, b);
      return !b;
    });
    let opened: Map<string, Backend>;
    try {
      opened = await openRuleBackends(toOpen, this.opts.factory);
    } catch (err) {
      // the message names the rule whose database could not be opened
      const named = toOpen.filter((r) => (err as Error).message.includes(`"${r.name}"`)).map((r) => r.name);
      throw new TopologyRefusedError(`topology from ${origin} refused: ${(err as Error).message}; the topology in effect stays`, [], named.length ? named : toOpen.map((r) => r.name));
    }
    const closeOpened = () => Promise.allSettled([...opened.values()].map((b) => b.close()));
    try {
      await this.claim(opened, origin);
      const inUse = new Set([...reused.values(), ...opened.values()]);
      const dropped = [...old.backends.values(), ...old.retired].filter((b) => !inUse.has(b));
      // a dropped backend that holds anything (keys, history) is emptied into the new owners, then closed
      const emptying: Backend[] = [];
      for (const b of dropped) if ((await b.maxRevision()) > 0) emptying.push(b);
      const routes = new RouteTable(doc, old.defaultBackend, new Map([...reused, ...opened]));
      // a revert pending in a route this change removes or re-points is done first (the list names routes)
      const repointed = old.named().filter(([n, b]) => routes.byRouteName(n) !== b).map(([n]) => n);
      const stuck = routed.pendingIn(repointed);
      try {
        await routed.settleRoutes(repointed);
      } catch (err) {
        throw new TopologyRefusedError(`topology from ${origin} refused: ${(err as Error).message}; the topology in effect stays until that database is back (the change is tried again meanwhile)`, [], stuck);
      }

      const names = new Map<Backend, string>();
      for (const [n, b] of old.named()) names.set(b, n);
      for (const [n, b] of opened) names.set(b, n);
      for (const b of old.retired) names.set(b, `retired ${b.description}`);

      const scanned = store.revision;
      const moves = new MoveReport(names);
      for (const b of [...old.all(), ...opened.values()]) await this.scan(b, scanned, routes, moves);
      moves.throwIfNotMovable(origin);

      const migrating = new Set<Backend>([...old.sources.keys()].filter((b) => inUse.has(b) || emptying.includes(b)));
      for (const b of [...moves.sources(), ...emptying]) migrating.add(b);

      let table!: RouteTable;
      let raced: string[] = [];
      const applied = await store.exclusive(
        async (tx, watermark) => {
          // a write that failed since left a revert in a route being re-pointed: it cannot be done in here
          raced = routed.pendingIn(repointed);
          if (raced.length > 0) return false;
          // keys written while the scan ran went by the old routing: they move too
          if (watermark > scanned) {
            for (const row of await routed.changes(scanned + 1, watermark, 0)) {
              const from = old.ownerOf(row.key);
              const to = routes.ownerOf(row.key);
              if (from !== to) {
                moves.add(from, to, row.key);
                migrating.add(from);
              }
            }
            if (!moves.movable) return false;
          }
          table = routes.withSources(this.sourceRecords(migrating, routes, old, ruleOf, store.revision));
          await tx.setMeta(META.topology, Buffer.from(JSON.stringify(doc)));
          await tx.setMeta(META.migrations, encodeMigrationState({ sources: [...table.sources.values()] }));
          return true;
        },
        () => routed.swap(table),
      );
      if (raced.length > 0) {
        throw new TopologyRefusedError(`topology from ${origin} refused: a write that failed while it was applied left a revert pending in rule(s) ${raced.map((n) => `"${n}"`).join(', ')}; the change is tried again`, [], raced);
      }
      if (!applied) moves.throwIfNotMovable(origin);
      await Promise.allSettled(dropped.filter((b) => !emptying.includes(b)).map((b) => b.close()));

      const oldNames = new Set(old.document.backends.map((r) => r.name));
      const newNames = new Set(doc.backends.map((r) => r.name));
      const outcome = {
        changed: true,
        added: [...newNames].filter((n) => !oldNames.has(n)),
        removed: [...oldNames].filter((n) => !newNames.has(n)),
      };
      topologyMetrics.rules.set(doc.backends.length);
      this.log.info('topology applied', { origin, rules: doc.backends.length, ...outcome, moving: moves.summary(), migrationSources: table.sources.size });
      if (table.migrating) this.opts.onMigration?.();
      return outcome;
    } catch (err) {
      await closeOpened();
      throw err;
    }
  }

  /** The durable record of each migration source in the new table (an existing migration keeps its start). */
  private sourceRecords(
    migrating: Set<Backend>,
    routes: RouteTable,
    old: RouteTable,
    ruleOf: Map<Backend, BackendRule>,
    revision: number,
  ): Map<Backend, SourceRecord> {
    const routeOf = new Map(routes.named().map(([n, b]) => [b, n]));
    const out = new Map<Backend, SourceRecord>();
    for (const b of migrating) {
      const since = old.sources.get(b)?.since ?? revision + 1;
      const route = routeOf.get(b);
      out.set(b, route !== undefined ? { route, since } : { rule: ruleOf.get(b)!, since });
    }
    return out;
  }

  /** Rejects endpoints that are the default backend's database or one database twice. */
  private checkEndpoints(doc: TopologyDocument, origin: string): void {
    const seen = new Map<string, string>([[location(parseEndpoint(this.opts.defaultEndpoint)), DEFAULT_BACKEND]]);
    doc.backends.forEach((rule, i) => {
      let where: string;
      try {
        where = location(parseEndpoint(rule.endpoint));
      } catch (err) {
        throw new TopologyRefusedError(`topology from ${origin} refused: backends[${i}] (name "${rule.name}") field "endpoint": ${(err as Error).message}`, [], [rule.name]);
      }
      const other = seen.get(where);
      if (other !== undefined) {
        throw new TopologyRefusedError(
          `topology from ${origin} refused: backends[${i}] (name "${rule.name}") field "endpoint": ${redactEndpoint(rule.endpoint)} is the same database as the ${label(other)}; give each rule its own database`,
          [],
          [rule.name],
        );
      }
      seen.set(where, rule.name);
    });
  }

  /**
   * Marks newly attached backends as ours. A database another middleware writes to has its own revision
   * numbers: mixing them in would break the one revision space, so it is refused.
   */
  private async claim(opened: Map<string, Backend>, origin: string): Promise<void> {
    const { store } = this.opts;
    for (const [name, b] of opened) {
      const owner = (await b.getMeta(META.owner))?.toString();
      if (owner && owner !== store.clusterId) {
        throw new TopologyRefusedError(
          `topology from ${origin} refused: rule "${name}" (${b.description}) belongs to another HariKube cluster (id ${owner}); give it an empty database`,
          [],
          [name],
        );
      }
      const max = await b.maxRevision();
      if (!owner && max > 0) {
        throw new TopologyRefusedError(
          `topology from ${origin} refused: rule "${name}" (${b.description}) already holds data written outside this middleware (revision ${max}); give it an empty database`,
          [],
          [name],
        );
      }
      if (max > store.revision) {
        throw new TopologyRefusedError(
          `topology from ${origin} refused: rule "${name}" (${b.description}) holds revision ${max}, above this middleware's ${store.revision}`,
          [],
          [name],
        );
      }
      if (!owner) await inWriteTxn(b, async (tx) => tx.setMeta(META.owner, Buffer.from(store.clusterId)));
    }
  }

  /**
   * Records every key of `b` that the new table gives to another backend: live keys, and (where the backend
   * can show them) deleted ones, whose history moves too.
   */
  private async scan(b: Backend, revision: number, table: RouteTable, moves: MoveReport): Promise<void> {
    let start: Buffer = ALL_START;
    for (;;) {
      const q = { start, end: TO_END, revision, limit: SCAN_PAGE, keysOnly: true };
      const rows = isMovable(b) ? await b.moves.rangeWithTombstones(q) : await b.range(q);
      for (const row of rows) {
        const owner = table.ownerOf(row.key);
        if (owner !== b) moves.add(b, owner, row.key);
      }
      if (rows.length < SCAN_PAGE) return;
      start = keyAfter(rows[rows.length - 1]!.key);
    }
  }
}

/** Keys that change backend, grouped by (from, to): what the migration moves, or why it is refused. */
class MoveReport {
  private readonly groups = new Map<string, KeyMove & { fromBackend: Backend; toBackend: Backend }>();

  constructor(private readonly names: Map<Backend, string>) {}

  add(from: Backend, to: Backend, key: Buffer): void {
    const f = this.names.get(from) ?? from.description;
    const t = this.names.get(to) ?? to.description;
    const k = key.toString('utf8');
    const id = `${f}\0${t}`;
    const g = this.groups.get(id);
    if (!g) this.groups.set(id, { from: f, to: t, count: 1, first: k, last: k, fromBackend: from, toBackend: to });
    else {
      g.count++;
      if (k < g.first) g.first = k;
      if (k > g.last) g.last = k;
    }
  }

  /** Backends that hold keys to move out. */
  sources(): Backend[] {
    return [...new Set([...this.groups.values()].map((g) => g.fromBackend))];
  }

  /** True when every move is between backends that can take part in a migration. */
  get movable(): boolean {
    return [...this.groups.values()].every((g) => isMovable(g.fromBackend) && isMovable(g.toBackend));
  }

  /** For the log: "N key(s) from A to B" per group. */
  summary(): string[] {
    return [...this.groups.values()].map((m) => `${m.count} key(s) from ${label(m.from)} to ${label(m.to)}`);
  }

  throwIfNotMovable(origin: string): void {
    if (this.movable) return;
    const stuck = [...this.groups.values()].filter((g) => !isMovable(g.fromBackend) || !isMovable(g.toBackend));
    const moves: KeyMove[] = stuck.map(({ from, to, count, first, last }) => ({ from, to, count, first, last }));
    const lines = stuck.map((m) => {
      const why = [m.fromBackend, m.toBackend].map((b) => movesRefused(b)).filter((r) => r !== undefined);
      return `${m.count} key(s) from ${label(m.from)} to ${label(m.to)}: ${m.first} .. ${m.last}${why.length ? ` (${why.join('; ')})` : ''}`;
    });
    throw new TopologyRefusedError(
      `topology from ${origin} refused: it would move existing keys into or out of a backend that cannot take part in a migration: a child middleware whose own topology routes its keys to backends of its own (online migration moves keys between SQLite, PostgreSQL, MySQL/MariaDB, etcd and child-middleware backends):\n  ${lines.join('\n  ')}\n` +
        'Delete those keys first, or keep the rules that route them where they are; the topology in effect stays.',
      moves,
      [...new Set(moves.flatMap((m) => [m.from, m.to]))].filter((n) => n !== DEFAULT_BACKEND && !n.startsWith('retired ')),
    );
  }
}

/**
 * Puts a new topology document into effect (TOPOLOGY.md, section 2): opens the backends it adds, checks that
 * no existing key would change owner, then swaps the routing between two write batches and persists the
 * document. A change that would strand existing keys is refused with the affected key ranges; the routing
 * in effect stays. (Moving data online is a later step; refusing is the safe answer until then.)
 */
import { inWriteTxn, type Backend } from '../backends/backend.js';
import { logger as rootLogger, type Logger } from '../log.js';
import { keyAfter } from '../mvcc/key-range.js';
import type { Store } from '../mvcc/store.js';
import { parseEndpoint, redactEndpoint, type Endpoint } from '../topology/endpoint.js';
import type { TopologyDocument } from '../topology/schema.js';
import { resolve } from 'node:path';
import { topologyMetrics } from './metrics.js';
import { backendIdentity, RouteTable } from './route-table.js';
import { META_TOPOLOGY, openRuleBackends, type BackendFactory, type RoutedBackend } from './routed-backend.js';
import { DEFAULT_BACKEND } from './router.js';

/** Meta value in every rule backend: the cluster ID of the middleware that owns its revisions. */
export const META_OWNER = 'owner_cluster_id';

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

/** Where an endpoint's data lives, to tell whether two endpoints are the same database. */
function location(e: Endpoint): string {
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
    const next = this.running.then(() => this.applyNow(doc, origin));
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

    // reuse the backend of every rule whose connection settings are unchanged (a rename keeps its data)
    const byIdentity = new Map(old.document.backends.map((r) => [backendIdentity(r), old.backends.get(r.name)!]));
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
      // a dropped backend that still holds history stays readable (old revisions, watch catch-up)
      const retired: Backend[] = [];
      for (const b of dropped) if ((await b.maxRevision()) > 0) retired.push(b);
      const table = new RouteTable(doc, old.defaultBackend, new Map([...reused, ...opened]), retired);

      const names = new Map<Backend, string>();
      for (const [n, b] of old.named()) names.set(b, n);
      for (const [n, b] of opened) names.set(b, n);
      for (const b of old.retired) names.set(b, `retired ${b.description}`);

      const scanned = store.revision;
      const moves = new MoveReport(names);
      for (const b of [...old.all(), ...opened.values()]) await this.scan(b, scanned, table, moves);
      moves.throwIfAny(origin);

      const applied = await store.exclusive(
        async (tx, watermark) => {
          // keys written while the scan ran went by the old routing: they must not move either
          if (watermark > scanned) {
            for (const row of await routed.changes(scanned + 1, watermark, 0)) {
              if (!row.deleted && table.ownerOf(row.key) !== old.ownerOf(row.key)) moves.add(old.ownerOf(row.key), table.ownerOf(row.key), row.key);
            }
          }
          if (moves.any) return false;
          await tx.setMeta(META_TOPOLOGY, Buffer.from(JSON.stringify(doc)));
          return true;
        },
        () => routed.swap(table),
      );
      if (!applied) moves.throwIfAny(origin);
      await Promise.allSettled(dropped.filter((b) => !retired.includes(b)).map((b) => b.close()));

      const oldNames = new Set(old.document.backends.map((r) => r.name));
      const newNames = new Set(doc.backends.map((r) => r.name));
      const outcome = {
        changed: true,
        added: [...newNames].filter((n) => !oldNames.has(n)),
        removed: [...oldNames].filter((n) => !newNames.has(n)),
      };
      topologyMetrics.rules.set(doc.backends.length);
      this.log.info('topology applied', { origin, rules: doc.backends.length, ...outcome, retired: retired.length });
      return outcome;
    } catch (err) {
      await closeOpened();
      throw err;
    }
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
      const owner = (await b.getMeta(META_OWNER))?.toString();
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
      if (!owner) await inWriteTxn(b, async (tx) => tx.setMeta(META_OWNER, Buffer.from(store.clusterId)));
    }
  }

  /** Records every live key of `b` that the new table gives to another backend. */
  private async scan(b: Backend, revision: number, table: RouteTable, moves: MoveReport): Promise<void> {
    let start: Buffer = ALL_START;
    for (;;) {
      const rows = await b.range({ start, end: TO_END, revision, limit: SCAN_PAGE, keysOnly: true });
      for (const row of rows) {
        const owner = table.ownerOf(row.key);
        if (owner !== b) moves.add(b, owner, row.key);
      }
      if (rows.length < SCAN_PAGE) return;
      start = keyAfter(rows[rows.length - 1]!.key);
    }
  }
}

/** Moved keys grouped by (from, to), for the refusal message. */
class MoveReport {
  private readonly groups = new Map<string, KeyMove>();

  constructor(private readonly names: Map<Backend, string>) {}

  get any(): boolean {
    return this.groups.size > 0;
  }

  add(from: Backend, to: Backend, key: Buffer): void {
    const f = this.names.get(from) ?? from.description;
    const t = this.names.get(to) ?? to.description;
    const k = key.toString('utf8');
    const id = `${f}\0${t}`;
    const g = this.groups.get(id);
    if (!g) this.groups.set(id, { from: f, to: t, count: 1, first: k, last: k });
    else {
      g.count++;
      if (k < g.first) g.first = k;
      if (k > g.last) g.last = k;
    }
  }

  throwIfAny(origin: string): void {
    if (!this.any) return;
    const moves = [...this.groups.values()];
    const lines = moves.map((m) => `${m.count} key(s) from ${label(m.from)} to ${label(m.to)}: ${m.first} .. ${m.last}`);
    throw new TopologyRefusedError(
      `topology from ${origin} refused: it would move existing keys to another backend, and moving data is not supported yet:\n  ${lines.join('\n  ')}\n` +
        'Delete those keys first, or keep the rules that route them where they are; the topology in effect stays.',
      moves,
      [...new Set(moves.flatMap((m) => [m.from, m.to]))].filter((n) => n !== DEFAULT_BACKEND && !n.startsWith('retired ')),
    );
  }
}

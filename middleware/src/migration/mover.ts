/**
 * The background mover of online migration. For each migration source (a backend that may hold keys the
 * topology in effect routes elsewhere) it scans the source's keys, and for every key another backend owns
 * it copies the key's whole history (revisions, version, lease kept: a copy is not a change, no watcher
 * sees it) into the owner in one transaction, then drops those rows from the source. A pass that finds
 * nothing left to move, with the routing unchanged meanwhile, ends the source's migration: it is removed
 * from the durable state, and a backend no rule routes to any more is closed.
 *
 * Crash safety comes from the order: copy (commit) before drop; a copy that is already there is skipped; a
 * drop removes only rows at or below the newest revision it copied (see `moveBatch`). A restart rescans from
 * the start, and copies again what it had copied but not dropped: the target's compaction may have removed
 * some of it meanwhile, which the target does not keep again (KeyMoves.copyIn).
 */
import { inWriteTxn, type Backend, type KeyRow } from '../backends/backend.js';
import { META } from '../backends/meta.js';
import { isMovable, type MovableBackend } from '../backends/movable.js';
import { Lock } from '../backends/sql/lock.js';
import { logger as rootLogger, type Logger } from '../log.js';
import { keyAfter } from '../backends/key-range.js';
import type { RouteTable } from '../router/route-table.js';
import { migrationMetrics } from './metrics.js';
import { encodeMigrationState } from '../router/migration-state.js';
import type { MigrationStatus, SourceStatus } from './status.js';

const ALL_START = Buffer.from([0]);
const TO_END = Buffer.alloc(0);
/** Keys per scan page (one row per key). */
const SCAN_KEYS = 1000;
/** History rows copied per transaction: bounds how long the owner's write lock is held. */
const COPY_ROWS = 500;
const MAX_BACKOFF_MS = 30_000;
/** Emptied sources kept in the status. */
const MAX_FINISHED = 20;

/** The routing the mover works with (RoutedBackend implements it). */
export interface MigrationHost {
  readonly table: RouteTable;
  swap(table: RouteTable): void;
  /** Held by the mover for each batch and by a topology change for its whole apply. */
  readonly migrationLock: Lock;
  /** A retired backend that is empty now: closed once reads in flight are done. */
  retire(backend: Backend): void;
  /**
   * Carries out the reverts pending in these backends (rows of a write that did not commit everywhere);
   * throws while one cannot be done. The mover reads and copies only settled rows: a copy of such a row would
   * outlive its revert, which knows only the database it was written to.
   */
  settle(backends: Backend[]): Promise<unknown>;
}

export interface MoverOptions {
  host: MigrationHost;
  /**
   * Keys moved per second at most (0: no limit), so the API server is never starved; the topology in effect
   * overrides it with `migration.keysPerSecond`.
   */
  keysPerSecond: number;
  logger?: Logger;
  /** Delay of the retry after a failed step; doubles to 30 s. */
  backoffMs?: number;
}

function sleep(ms: number, signal: { stopped: boolean; wake?: () => void }): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.wake = () => {
      clearTimeout(t);
      resolve();
    };
  });
}

export class Mover {
  private readonly log: Logger;
  private running?: Promise<void>;
  private readonly signal: { stopped: boolean; wake?: () => void } = { stopped: false };
  private readonly progress = new Map<Backend, SourceStatus>();
  private readonly finished: SourceStatus[] = [];
  private readonly listeners = new Set<(status: MigrationStatus) => void>();
  /** The moving pass of each source: when it began and how many keys it moved (for its rate). */
  private readonly passes = new Map<SourceStatus, { began: number; moved: number }>();

  constructor(private readonly opts: MoverOptions) {
    this.log = (opts.logger ?? rootLogger).child({ component: 'migration' });
  }

  /** Starts the loop (idempotent); it sleeps while nothing moves. */
  start(): void {
    this.running ??= this.loop();
  }

  /** The routing changed: look at the sources again now. */
  kick(): void {
    this.start();
    this.signal.wake?.();
  }

  async stop(): Promise<void> {
    this.signal.stopped = true;
    this.signal.wake?.();
    await this.running;
  }

  status(): MigrationStatus {
    const t = this.opts.host.table;
    const current = [...t.sources.keys()].map((b) => this.rated(this.progress.get(b) ?? this.fresh(t, b)));
    const fromTopology = t.document.migration?.keysPerSecond !== undefined;
    return { active: t.migrating, rateLimit: this.rate, rateLimitFrom: fromTopology ? 'topology' : 'flag', sources: [...current, ...this.finished] };
  }

  /**
   * Calls `listener` with the status after every change the mover makes (a count, a moved batch, a failed
   * step, an emptied source), synchronously: keep it cheap. Returns the function that unsubscribes.
   */
  onChange(listener: (status: MigrationStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Keys per second now: the topology's `migration.keysPerSecond` when it sets one, else the flag. */
  private get rate(): number {
    return this.opts.host.table.document.migration?.keysPerSecond ?? this.opts.keysPerSecond;
  }

  /**
   * `st` with its rate and time left as of now: keys moved over the pass so far per second, capped by the
   * limit (the mover moves a batch at once, then waits until the limit allows the next one).
   */
  private rated(st: SourceStatus): SourceStatus {
    const pass = this.passes.get(st);
    if (!pass || st.phase !== 'moving') return st;
    const elapsed = (Date.now() - pass.began) / 1000;
    const observed = elapsed > 0 ? pass.moved / elapsed : 0;
    const rate = Math.round(this.rate > 0 ? Math.min(observed, this.rate) : observed);
    st.keysPerSecond = rate;
    st.etaSeconds = rate > 0 ? Math.ceil(Math.max(0, st.keysTotal - st.keysMoved) / rate) : undefined;
    return st;
  }

  private changed(): void {
    if (this.listeners.size === 0) return;
    const status = this.status();
    for (const l of this.listeners) {
      try {
        l(status);
      } catch (err) {
        this.log.warn('a migration status listener failed', { error: (err as Error).message });
      }
    }
  }

  private fresh(t: RouteTable, b: Backend): SourceStatus {
    const rec = t.sources.get(b)!;
    const route = rec.route;
    return {
      source: route !== undefined ? route : `retired: ${b.description}`,
      description: b.description,
      ...(rec.rule ? { rule: rec.rule.name } : {}),
      since: rec.since,
      phase: 'counting',
      keysTotal: 0,
      keysMoved: 0,
      keysPerSecond: 0,
      errors: 0,
      startedAt: Date.now(),
    };
  }

  private async loop(): Promise<void> {
    let backoff = this.opts.backoffMs ?? 1000;
    while (!this.signal.stopped) {
      const t = this.opts.host.table;
      migrationMetrics.sources.set(t.sources.size);
      if (!t.migrating) {
        await sleep(60_000, this.signal);
        continue;
      }
      let failed = false;
      for (const source of t.sources.keys()) {
        if (this.signal.stopped) return;
        if (!this.progress.has(source)) this.progress.set(source, this.fresh(t, source));
        const st = this.progress.get(source)!;
        try {
          await this.empty(source, st);
        } catch (err) {
          failed = true;
          st.errors++;
          st.lastError = (err as Error).message;
          migrationMetrics.errors.inc({ source: st.source });
          this.log.warn('migration step failed; retrying', { source: st.source, backend: st.description, error: (err as Error).message, retryInMs: backoff });
          this.changed();
        }
      }
      if (failed) {
        await sleep(backoff, this.signal);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      } else {
        backoff = this.opts.backoffMs ?? 1000;
      }
    }
  }

  /** Counts, moves, verifies; ends the source's migration when nothing is left. */
  private async empty(source: Backend, st: SourceStatus): Promise<void> {
    if (!isMovable(source)) throw new Error(`${source.description} cannot take part in a migration`);
    const startTable = this.opts.host.table;
    if (st.phase === 'counting' || st.keysTotal === 0) {
      st.phase = 'counting';
      const targets = new Set<string>();
      st.keysTotal = st.keysMoved + (await this.scan(source, false, undefined, targets));
      // a recount that finds nothing left keeps saying where the keys went
      if (targets.size > 0 || st.targets === undefined) st.targets = [...targets].sort();
      migrationMetrics.keysRemaining.set({ source: st.source }, st.keysTotal - st.keysMoved);
      this.log.info('migration: counted keys to move', { source: st.source, backend: st.description, keys: st.keysTotal - st.keysMoved, to: st.targets });
    }
    st.phase = 'moving';
    this.changed();
    await this.scan(source, true, st);
    st.phase = 'verifying';
    const left = await this.scan(source, false);
    if (this.signal.stopped) return;
    if (left > 0 || this.opts.host.table !== startTable) {
      // the routing changed or writes raced the scan: count again on the next turn
      st.phase = 'counting';
      st.keysTotal = st.keysMoved + left;
      return;
    }
    await this.finish(source, st);
  }

  /**
   * One pass over the source's keys. Returns how many keys it holds that another backend owns; with `move`,
   * moves them (and returns how many it moved).
   */
  private async scan(source: MovableBackend, move: boolean, st?: SourceStatus, targets?: Set<string>): Promise<number> {
    let start: Buffer = ALL_START;
    let found = 0;
    const began = Date.now();
    const window = { start: began, moved: 0, rate: this.rate };
    const pass = { began, moved: 0 };
    if (move) this.passes.set(st!, pass);
    await this.opts.host.settle([source]);
    for (;;) {
      if (this.signal.stopped) return found;
      const keys = await source.moves.rangeWithTombstones({ start, end: TO_END, revision: Number.MAX_SAFE_INTEGER, limit: SCAN_KEYS, keysOnly: true });
      if (keys.length === 0) return found;
      const t = this.opts.host.table;
      const foreign = keys.filter((k) => t.ownerOf(k.key) !== source);
      found += foreign.length;
      if (targets) for (const k of foreign) targets.add(t.nameOf(t.ownerOf(k.key)));
      if (move && foreign.length > 0) {
        await this.moveKeys(source, foreign[0]!.key, keyAfter(foreign[foreign.length - 1]!.key), async (moved) => {
          pass.moved += moved;
          st!.keysMoved += moved;
          this.rated(st!);
          const left = Math.max(0, st!.keysTotal - st!.keysMoved);
          migrationMetrics.keysMoved.inc({ source: st!.source }, moved);
          migrationMetrics.keysRemaining.set({ source: st!.source }, left);
          this.changed();
          await this.throttle(window, moved);
        });
      }
      if (keys.length < SCAN_KEYS) return found;
      start = keyAfter(keys[keys.length - 1]!.key);
    }
  }

  /**
   * Moves the foreign keys of the source in [from, to), a batch of history rows at a time, reporting each
   * batch's keys to `done` (which throttles). Under a rate limit a batch is at most a tenth of a second's
   * worth of keys, so the limit holds over short spans too: a whole scan page moved at once would be a burst
   * of up to SCAN_KEYS keys against the API server's writes, then a long sleep.
   */
  private async moveKeys(source: MovableBackend, from: Buffer, to: Buffer, done: (moved: number) => Promise<void>): Promise<void> {
    let start: Buffer = from;
    for (;;) {
      if (this.signal.stopped) return;
      const readWith = this.opts.host.table;
      const rate = this.rate;
      const batch = rate > 0 ? Math.max(1, Math.min(COPY_ROWS, Math.ceil(rate / 10))) : COPY_ROWS;
      await this.opts.host.settle([source]);
      const rows = await source.moves.history(start, to, batch);
      if (rows.length === 0) return;
      await done(await this.opts.host.migrationLock.run(() => this.moveBatch(source, rows, readWith)));
      start = keyAfter(rows[rows.length - 1]!.key);
    }
  }

  /**
   * Copies each foreign key's rows into its owner (committed), then drops them from the source: the rows up
   * to the batch's newest revision when the routing is the one the rows were read with (no write can have
   * reached the source for a key it does not own since), else each key's rows up to its own newest copied
   * revision (the key may have been the source's again meanwhile, and written there).
   */
  private async moveBatch(source: MovableBackend, rows: KeyRow[], readWith: RouteTable): Promise<number> {
    const t = this.opts.host.table;
    if (!t.sources.has(source)) return 0;
    const byOwner = new Map<MovableBackend, KeyRow[]>();
    for (const row of rows) {
      const owner = t.ownerOf(row.key);
      if (owner === source) continue;
      if (!isMovable(owner)) throw new Error(`key ${JSON.stringify(row.key.toString('utf8'))} is routed to ${owner.description}, which cannot take part in a migration`);
      const list = byOwner.get(owner);
      if (list) list.push(row);
      else byOwner.set(owner, [row]);
    }
    await this.opts.host.settle([...byOwner.keys()]);
    let keys = 0;
    for (const [owner, list] of byOwner) {
      await owner.moves.copyIn(list);
      const upTo = new Map<string, { key: Buffer; upTo: number }>();
      for (const r of list) {
        const id = r.key.toString('latin1');
        const e = upTo.get(id);
        if (!e) upTo.set(id, { key: r.key, upTo: r.modRevision });
        else if (r.modRevision > e.upTo) e.upTo = r.modRevision;
      }
      if (t === readWith) await source.moves.dropOut([...upTo.values()].map((e) => e.key), Math.max(...list.map((r) => r.modRevision)));
      else for (const e of upTo.values()) await source.moves.dropOut([e.key], e.upTo);
      keys += upTo.size;
    }
    return keys;
  }

  /**
   * Waits until the keys moved in `window` are within the rate. A rate changed meanwhile (a topology that sets
   * another `migration.keysPerSecond` wakes the mover) starts a new window at once: lowering the rate must
   * not leave the mover asleep for what the old rate had earned, raising it must take effect now.
   */
  private async throttle(window: { start: number; moved: number; rate: number }, moved: number): Promise<void> {
    window.moved += moved;
    for (;;) {
      const rate = this.rate;
      if (this.signal.stopped) return;
      if (rate !== window.rate) {
        window.start = Date.now();
        window.moved = 0;
        window.rate = rate;
        return;
      }
      if (rate <= 0) return;
      const wait = window.start + (window.moved / rate) * 1000 - Date.now();
      if (wait <= 0) return;
      await sleep(wait, this.signal);
    }
  }

  /** The source is empty of foreign keys: it leaves the durable state (and a retired one is closed). */
  private async finish(source: Backend, st: SourceStatus): Promise<void> {
    await this.opts.host.migrationLock.run(async () => {
      const t = this.opts.host.table;
      if (!t.sources.has(source)) return;
      const sources = new Map(t.sources);
      sources.delete(source);
      await inWriteTxn(t.defaultBackend, async (tx) => tx.setMeta(META.migrations, encodeMigrationState({ sources: [...sources.values()] })));
      const next = t.withSources(sources);
      this.opts.host.swap(next);
      if (next.retired.length < t.retired.length) this.opts.host.retire(source);
      migrationMetrics.sources.set(sources.size);
    });
    this.passes.delete(st);
    st.phase = 'done';
    st.finishedAt = Date.now();
    st.etaSeconds = 0;
    migrationMetrics.keysRemaining.set({ source: st.source }, 0);
    this.progress.delete(source);
    this.finished.push(st);
    // a long-running middleware keeps the recent ones only (GET /migrations stays small)
    if (this.finished.length > MAX_FINISHED) this.finished.shift();
    this.log.info('migration: source emptied', { source: st.source, backend: st.description, keysMoved: st.keysMoved, seconds: Math.round((st.finishedAt - st.startedAt) / 1000) });
    this.changed();
  }
}

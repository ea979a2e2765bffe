/**
 * Online migration (migration/) into and out of a real etcd: the etcd backend's `moves`
 * (backends/movable.ts). The etcd numbers its own history, and a global revision maps to the etcd revision
 * that holds it (revision-map.ts), so rows cannot be written into the etcd at their old revisions. Instead
 * (README "What is stored in an etcd backend", layout.ts):
 *
 * - **As a target**, a copy puts each row of the key's history under `harikube/copied/<hex key>/<global>`
 *   (its envelope: revisions, version, lease, sub), and the newest row, when newer than anything the etcd
 *   has of the key, under the key itself (a tombstone: as the key's tombstone), so that once the migration
 *   is over the key is an
 *   ordinary key of the etcd (reads at the newest revision, leases, `etcdctl get`). The copy's etcd
 *   revisions have no revision-map entry, so watch catch-up (`changes`) skips their events: a copy is not a
 *   change. A read at a global revision whose etcd revision is older than a copy (or a revision below a
 *   copied row) also reads the copied rows and takes, per key, the newest row at or below the revision.
 * - **Tombstones**: etcd keeps none, but reads across a migration need the target's (a key deleted in the
 *   target must not show the copy still in the source, reads.ts), and a copy must not bring back a key
 *   deleted in the target. Every delete puts the key's tombstone under `harikube/deleted/<hex key>` in its
 *   own etcd transaction; reads at a revision read it at the same etcd revision as the keys (inside a
 *   group, minus the group's later changes, as for the keys: group-undo.ts).
 * - **As a source**, `history` walks each key's versions back through the etcd's revisions (live versions
 *   and tombstones) down to the oldest revision still readable, plus its copied rows. A drop deletes the key,
 *   its tombstone and its copied rows up to the moved revision, at an etcd revision without a revision-map
 *   entry (so no client sees a delete), and records `harikube/dropped/<hex key>` = that revision: the
 *   etcd's older revisions still hold the moved versions, and reads and watch catch-up of those revisions
 *   skip them (they live in the target now).
 *
 * Copies and drops run under the backend's write lock, so their etcd revisions never fall inside the etcd
 * revisions of one commit, and a group's etcd revision holds commit writes only (group-undo.ts). Compaction
 * removes what no read at or above the compacted revision needs (inside a group: from the etcd revision
 * before it, which the compaction keeps).
 */
import { keyAfter } from '../key-range.js';
import type { ChangeRow, KeyRow, RangeQuery } from '../backend.js';
import type { KeyMoves } from '../movable.js';
import type { Lock } from '../sql/lock.js';
import type { WrittenKeys } from '../written-keys.js';
import type { EtcdClient, EtcdKeyValue } from './client.js';
import {
  copiedKey,
  copiedSpan,
  decodeStored,
  decodeValue,
  deletedKey,
  deletedSpan,
  droppedKey,
  droppedSpan,
  encodeValue,
  INTERNAL_END,
  INTERNAL_PREFIX,
  isInternal,
  keyOfDeleted,
  keyOfDropped,
  parseCopiedKey,
  type EtcdSpan,
} from './layout.js';
import type { Undone } from './group-undo.js';
import { MAX_TXN_OPS, del, put, type Op } from './txn-ops.js';

/** etcd's `range_end` for "to the end of the keyspace". */
const ALL = Buffer.from([0]);
/** Keys looked up at once (their versions are walked in parallel). */
const PARALLEL_KEYS = 16;

/** What the moves need of the etcd backend (EtcdBackend implements it). */
export interface EtcdStore {
  readonly description: string;
  /** Held by every write of the backend (commits, reverts, compaction). */
  readonly writeLock: Lock;
  /** The keys the etcd may hold rows of: a copy adds its keys before it is sent. */
  readonly written: WrittenKeys;
  live(): EtcdClient;
  /** Reloads a stale revision map; the caller holds no lock. */
  fresh(): Promise<void>;
  /** Reloads a stale revision map; the caller holds the write lock. */
  freshLocked(): Promise<void>;
  /** The etcd revision to read for global `revision`; -1 when nothing was written at or below it. */
  etcdRevisionAt(revision: number): number;
  /** The newest etcd revision holding nothing above global `revision`; -1 for none. */
  settledAt(revision: number): number;
  /** Inside a group: per key, what it changed above `revision`, as it was at `revision` (group-undo.ts). */
  undoAt(revision: number): Promise<Map<string, Undone> | undefined>;
  /**
   * The oldest global revision still readable and the oldest etcd revision its reads need (inside a group:
   * the one before it); undefined when none is.
   */
  oldestReadable(): { global: number; etcdRevision: number } | undefined;
  /** A copy or drop committed at etcd revision `rev` (write lock held): reads at the newest revision read there. */
  advanced(rev: number): void;
  /** Runs `ops` in as few etcd transactions as etcd takes; the etcd revision of the last one. */
  txns(ops: Op[]): Promise<number>;
}

/** A key moved out: its rows up to global `upTo` are gone from the etcd revisions before `etcdRevision`. */
interface Drop {
  upTo: number;
  etcdRevision: number;
}

const id = (key: Buffer) => key.toString('latin1');

function spanOf(start: Buffer, end: Buffer | undefined): EtcdSpan {
  return end === undefined ? { key: start } : { key: start, range_end: end.length === 0 ? ALL : end };
}

/** Per key (in key order) the newest of `rows`: a tombstone counts. */
function newestPerKey(rows: Iterable<KeyRow>): KeyRow[] {
  const byKey = new Map<string, KeyRow>();
  for (const r of rows) {
    const k = id(r.key);
    const had = byKey.get(k);
    if (!had || r.modRevision > had.modRevision) byKey.set(k, r);
  }
  return [...byKey.values()].sort((a, b) => Buffer.compare(a.key, b.key));
}

export class EtcdMoves implements KeyMoves {
  /** Copied rows stored, the newest etcd revision of one, the newest global revision of one. */
  private copies = { count: 0, etcdHigh: 0, globalHigh: 0 };
  /** Drop records stored and the newest etcd revision of one. */
  private drops = { count: 0, etcdHigh: 0 };

  constructor(private readonly store: EtcdStore) {}

  /** Reads what the etcd holds of past migrations (on open). */
  async load(): Promise<void> {
    const c = this.store.live();
    const copied = await c.range({ ...copiedSpan(Buffer.alloc(0), Buffer.alloc(0)), keys_only: true });
    this.copies = { count: copied.kvs.length, etcdHigh: 0, globalHigh: 0 };
    for (const kv of copied.kvs) {
      this.copies.etcdHigh = Math.max(this.copies.etcdHigh, Number(kv.mod_revision));
      this.copies.globalHigh = Math.max(this.copies.globalHigh, parseCopiedKey(kv.key).global);
    }
    const dropped = await c.range({ ...droppedSpan(Buffer.alloc(0), Buffer.alloc(0)), keys_only: true });
    this.drops = { count: dropped.kvs.length, etcdHigh: Math.max(0, ...dropped.kvs.map((kv) => Number(kv.mod_revision))) };
  }

  /**
   * Whether a read at global `revision`, etcd revision `at`, must look beyond the etcd's own snapshot: a
   * copy newer than `at` or a copied row above `revision`, or a drop newer than `at`.
   */
  beyondSnapshot(revision: number, at: number): boolean {
    return this.needsCopies(revision, at) || (this.drops.count > 0 && at < this.drops.etcdHigh);
  }

  private needsCopies(revision: number, at: number): boolean {
    return this.copies.count > 0 && (at < this.copies.etcdHigh || revision < this.copies.globalHigh);
  }

  rangeWithTombstones(q: RangeQuery): Promise<KeyRow[]> {
    return this.read(q, true);
  }

  /**
   * A snapshot read at `q.revision` that sees copies, tombstones and drops: per key the newest row at or
   * below the revision among the etcd's own version at the mapped etcd revision, its tombstone there and its
   * copied rows; tombstones are dropped unless `tombstones`.
   */
  async read(q: RangeQuery, tombstones: boolean): Promise<KeyRow[]> {
    const c = this.store.live();
    await this.store.fresh();
    const at = this.store.etcdRevisionAt(q.revision);
    const withCopies = this.needsCopies(q.revision, at);
    if (at < 0 && !withCopies) return [];
    // inside a group: the keys and tombstones it changed later are read as they were, so no limit goes to
    // the etcd (rare: a migration and a read inside a group)
    const undo = at >= 0 ? await this.store.undoAt(q.revision) : undefined;
    const drops = this.drops.count > 0 && at < this.drops.etcdHigh ? await this.dropsIn(q.start, q.end) : undefined;
    // a row of the etcd's snapshot that an older etcd revision still shows although it was moved out
    const moved = (r: KeyRow) => {
      const d = drops?.get(id(r.key));
      return d !== undefined && at < d.etcdRevision && r.modRevision <= d.upTo;
    };
    const out: KeyRow[] = [];
    let start = q.start;
    for (;;) {
      // the etcd's internal keys are not keys: a page stops before them, the next one starts after them
      if (q.end !== undefined && isInternal(start)) start = INTERNAL_END;
      if (q.end !== undefined && q.end.length > 0 && Buffer.compare(start, q.end) >= 0) return out;
      const want = q.limit > 0 && !undo ? q.limit - out.length : 0;
      // what this page covers: [start, bound), bound undefined = to the end
      let bound: Buffer | undefined = q.end !== undefined && q.end.length > 0 ? q.end : undefined;
      const lower = (b: Buffer) => {
        if (bound === undefined || Buffer.compare(b, bound) < 0) bound = b;
      };
      if (q.end !== undefined && Buffer.compare(start, INTERNAL_PREFIX) < 0) lower(INTERNAL_PREFIX);
      // a list cut at `want` says nothing about the keys after its last one
      const cut = (keys: Buffer[]) => {
        if (want > 0 && keys.length >= want) lower(keyAfter(keys[keys.length - 1]!));
      };
      const end = q.end === undefined ? undefined : (bound ?? Buffer.alloc(0));
      const snapshot: KeyRow[] = [];
      if (at >= 0) {
        const own = await c.range({ ...spanOf(start, end), revision: String(at), limit: String(want) });
        cut(own.kvs.map((kv) => kv.key));
        const dead = await c.range({ ...deletedSpan(start, end), revision: String(at), limit: String(want) });
        const deadKeys = dead.kvs.map((kv) => keyOfDeleted(kv.key));
        cut(deadKeys);
        for (const kv of own.kvs) if (!isInternal(kv.key) && !undo?.get(id(kv.key))?.live) snapshot.push(decodeValue(kv.key, kv.value, this.store.description));
        dead.kvs.forEach((kv, i) => {
          if (!undo?.get(id(deadKeys[i]!))?.tombstone) snapshot.push(decodeValue(deadKeys[i]!, kv.value, this.store.description));
        });
        for (const u of undo?.values() ?? []) {
          if (q.end === undefined ? !u.key.equals(start) : Buffer.compare(u.key, start) < 0 || (end !== undefined && end.length > 0 && Buffer.compare(u.key, end) >= 0)) continue;
          if (u.live?.row) snapshot.push(u.live.row);
          if (u.tombstone?.row) snapshot.push(u.tombstone.row);
        }
      }
      const rows = snapshot.filter((r) => !moved(r));
      if (withCopies) {
        const to = q.end === undefined ? undefined : (bound ?? Buffer.alloc(0));
        for (const kv of (await c.range(copiedSpan(start, to))).kvs) rows.push(decodeValue(parseCopiedKey(kv.key).key, kv.value, this.store.description));
      }
      for (const r of newestPerKey(rows.filter((r) => r.modRevision <= q.revision))) {
        if (q.end !== undefined && (Buffer.compare(r.key, start) < 0 || (bound !== undefined && Buffer.compare(r.key, bound) >= 0))) continue;
        if (r.deleted && !tombstones) continue;
        out.push(q.keysOnly ? { ...r, value: Buffer.alloc(0) } : r);
        if (q.limit > 0 && out.length >= q.limit) return out;
      }
      if (q.end === undefined || bound === undefined || (q.end.length > 0 && bound.equals(q.end))) return out;
      start = bound;
    }
  }

  /** The drop records of the keys in [start, end) (undefined: `start` alone). */
  private async dropsIn(start: Buffer, end: Buffer | undefined): Promise<Map<string, Drop>> {
    const out = new Map<string, Drop>();
    for (const kv of (await this.store.live().range(droppedSpan(start, end))).kvs) {
      out.set(id(keyOfDropped(kv.key)), { upTo: Number(kv.value.toString()), etcdRevision: Number(kv.mod_revision) });
    }
    return out;
  }

  /**
   * Watch catch-up's view of copies and drops: removes from `own` (the etcd's events, in order) the
   * versions moved out, and adds the copied rows of revisions [from, to] (each with its predecessor when it
   * was copied too), in (revision, sub) order, at most `limit` (0: all).
   */
  async changes(own: { row: ChangeRow; etcdRevision: number }[], from: number, to: number, limit: number): Promise<ChangeRow[]> {
    let rows = own.map((e) => e.row);
    if (this.drops.count > 0 && own.length > 0 && own[0]!.etcdRevision < this.drops.etcdHigh) {
      const drops = await this.dropsIn(Buffer.alloc(0), Buffer.alloc(0));
      rows = own
        .filter((e) => {
          const d = drops.get(id(e.row.key));
          return d === undefined || e.etcdRevision >= d.etcdRevision || e.row.modRevision > d.upTo;
        })
        .map((e) => e.row);
    }
    if (this.copies.count === 0) return rows;
    // a version written here while its predecessor was still in the source has no prev_kv of the etcd's own:
    // the predecessor was copied in since
    const orphans = rows.filter((r) => !r.prev && r.prevRevision !== 0);
    for (let i = 0; i < orphans.length; i += PARALLEL_KEYS) {
      await Promise.all(
        orphans.slice(i, i + PARALLEL_KEYS).map(async (r) => {
          const kv = (await this.store.live().range({ key: copiedKey(r.key, r.prevRevision) })).kvs[0];
          const prev = kv && decodeValue(r.key, kv.value, this.store.description);
          if (prev && !prev.deleted) r.prev = prev;
        }),
      );
    }
    if (from > this.copies.globalHigh) return rows;
    const byKey = new Map<string, Map<number, KeyRow>>();
    for (const kv of (await this.store.live().range(copiedSpan(Buffer.alloc(0), Buffer.alloc(0)))).kvs) {
      const { key, global } = parseCopiedKey(kv.key);
      const versions = byKey.get(id(key)) ?? new Map<number, KeyRow>();
      versions.set(global, decodeValue(key, kv.value, this.store.description));
      byKey.set(id(key), versions);
    }
    const copied: ChangeRow[] = [];
    for (const versions of byKey.values()) {
      for (const r of versions.values()) {
        if (r.modRevision < from || r.modRevision > to) continue;
        const prev = versions.get(r.prevRevision);
        copied.push({ ...r, prev: prev && !prev.deleted ? prev : undefined });
      }
    }
    const seen = new Set(rows.map((r) => `${r.modRevision} ${r.sub}`));
    const all = [...rows, ...copied.filter((r) => !seen.has(`${r.modRevision} ${r.sub}`))].sort((a, b) => a.modRevision - b.modRevision || a.sub - b.sub);
    // the etcd's own events were cut at `limit`: the merged list is exact only up to their last revision
    const cutAt = limit > 0 && own.length >= limit ? own[own.length - 1]!.row.modRevision : Infinity;
    const upTo = all.filter((r) => r.modRevision <= cutAt);
    return limit > 0 ? upTo.slice(0, limit) : upTo;
  }

  /**
   * Every stored row of the keys in [start, end) (empty `end`: to the end), whole keys, about `limitRows`:
   * the etcd's own versions of each key (walked back through its revisions to the oldest still readable),
   * its tombstones and its copied rows.
   */
  async history(start: Buffer, end: Buffer, limitRows: number): Promise<KeyRow[]> {
    const c = this.store.live();
    await this.store.fresh();
    const span = spanOf(start, end);
    // every key has a row: the first `limitRows` keys of each list are enough, up to the first list's cut
    const limit = Math.max(1, limitRows);
    const [own, dead, copied] = await Promise.all([
      c.range({ ...span, keys_only: true, limit: String(limit) }),
      c.range({ ...deletedSpan(start, end), keys_only: true, limit: String(limit) }),
      c.range({ ...copiedSpan(start, end), keys_only: true, limit: String(limit) }),
    ]);
    const lists = [own.kvs.map((kv) => kv.key), dead.kvs.map((kv) => keyOfDeleted(kv.key)), copied.kvs.map((kv) => parseCopiedKey(kv.key).key)];
    let horizon: Buffer | undefined;
    for (const l of lists) if (l.length >= limit && (!horizon || Buffer.compare(l[l.length - 1]!, horizon) < 0)) horizon = l[l.length - 1]!;
    const keys = new Map<string, Buffer>();
    for (const l of lists) for (const k of l) if (!isInternal(k)) keys.set(id(k), k);
    let ordered = [...keys.values()].sort(Buffer.compare);
    const within = horizon ? ordered.filter((k) => Buffer.compare(k, horizon!) <= 0) : ordered;
    if (within.length > 0) ordered = within;
    else if (horizon) return this.history(start, end, limit * 10);
    const drops = this.drops.count > 0 ? await this.dropsIn(start, end) : new Map<string, Drop>();
    const out: KeyRow[] = [];
    for (let i = 0; i < ordered.length && (out.length === 0 || out.length < limitRows); i += PARALLEL_KEYS) {
      const histories = await Promise.all(ordered.slice(i, i + PARALLEL_KEYS).map((k) => this.keyHistory(k, drops.get(id(k)))));
      for (const h of histories) {
        if (out.length > 0 && out.length + h.length > limitRows) return out;
        out.push(...h);
      }
    }
    return out;
  }

  /** Every stored row of `key`, oldest first (`drop`: its drop record, if it has one). */
  private async keyHistory(key: Buffer, drop: Drop | undefined): Promise<KeyRow[]> {
    const c = this.store.live();
    const rows = new Map<number, KeyRow>();
    const copied = this.copies.count > 0 ? (await c.range(copiedSpan(key, undefined))).kvs : [];
    for (const kv of copied) {
      const r = decodeValue(key, kv.value, this.store.description);
      rows.set(r.modRevision, r);
    }
    const oldest = this.store.oldestReadable();
    // from the newest etcd revision down: the key's version or its tombstone, whichever is newer, then the etcd revision before it
    let at: number | undefined;
    for (let steps = 0; oldest && steps < 1_000_000; steps++) {
      const rev = at === undefined ? {} : { revision: String(at) };
      const [live, dead] = await Promise.all([c.range({ key, ...rev }), c.range({ key: deletedKey(key), ...rev })]);
      const kv: EtcdKeyValue | undefined = [live.kvs[0], dead.kvs[0]].filter((x) => x !== undefined).sort((a, b) => Number(b!.mod_revision) - Number(a!.mod_revision))[0];
      if (!kv) break;
      const etcdRev = Number(kv.mod_revision);
      const r = decodeValue(key, kv.value, this.store.description);
      // a copied version put under the key is among the copied rows too (same revision: one row); moved out: gone
      const movedOut = drop !== undefined && etcdRev < drop.etcdRevision && r.modRevision <= drop.upTo;
      if (!movedOut) rows.set(r.modRevision, r);
      // the key's row at the oldest readable revision: nothing older is needed
      if (etcdRev - 1 < oldest.etcdRevision || r.modRevision <= oldest.global) break;
      at = etcdRev - 1;
    }
    return [...rows.values()].sort((a, b) => a.modRevision - b.modRevision);
  }

  /**
   * Stores the copied rows of each key it does not hold yet, and puts the newest under the key itself when it
   * is live and newer than what the etcd has of the key (its version or tombstone): an etcd-side write since
   * the routing change is newer than anything a source holds. Returns how many rows it stored.
   */
  async copyIn(rows: KeyRow[]): Promise<number> {
    if (rows.length === 0) return 0;
    for (const r of rows) this.store.written.add(r.key);
    return this.store.writeLock.run(async () => {
      await this.store.freshLocked();
      const c = this.store.live();
      const byKey = new Map<string, KeyRow[]>();
      for (const r of rows) byKey.set(id(r.key), [...(byKey.get(id(r.key)) ?? []), r]);
      const keys = [...byKey.values()].map((l) => l[0]!.key).sort(Buffer.compare);
      const lo = keys[0]!;
      const hi = keyAfter(keys[keys.length - 1]!);
      const [held, copied] = await Promise.all([this.newestHeld(keys), c.range({ ...copiedSpan(lo, hi), keys_only: true })]);
      const stored = new Set(copied.kvs.map((kv) => id(kv.key)));
      const ops: Op[] = [];
      let count = 0;
      let globalHigh = 0;
      for (const key of keys) {
        const versions = byKey.get(id(key))!.sort((a, b) => a.modRevision - b.modRevision);
        for (const r of versions) {
          const k = copiedKey(key, r.modRevision);
          if (stored.has(id(k))) continue;
          ops.push(put(k, encodeValue(r)));
          count++;
          globalHigh = Math.max(globalHigh, r.modRevision);
        }
        const newest = versions[versions.length - 1]!;
        const here = held.get(id(key));
        // a deleted key's tombstone goes where the etcd's own tombstones are, so scans see the key to move it on
        if (here === undefined || here < newest.modRevision) ops.push(newest.deleted ? put(deletedKey(key), encodeValue(newest)) : put(key, encodeValue(newest)));
      }
      if (ops.length === 0) return 0;
      const rev = await this.store.txns(ops);
      this.copies.count += count;
      this.copies.etcdHigh = Math.max(this.copies.etcdHigh, rev);
      this.copies.globalHigh = Math.max(this.copies.globalHigh, globalHigh);
      this.store.advanced(rev);
      return count;
    });
  }

  /**
   * Compaction at global `revision` (the caller holds the write lock, and compacted the etcd): removes the
   * tombstones below it, the copied rows no read at or above it needs (every one but each key's newest at
   * or below it, and that one too when it is a tombstone below it, hidden by a newer tombstone, or carried by
   * the etcd's own version of the key from the compacted etcd revision on), and the drop records of etcd
   * revisions that are gone. Returns how many entries it removed.
   */
  async compact(revision: number): Promise<number> {
    const c = this.store.live();
    // inside a group the etcd revision holds later changes: the one before it is kept by the compaction
    const at = this.store.settledAt(revision);
    const all = Buffer.alloc(0);
    const ops: Op[] = [];
    const tombstoneAt = new Map<string, number>();
    for (const kv of (await c.range(deletedSpan(all, all))).kvs) {
      const key = keyOfDeleted(kv.key);
      const mod = decodeStored(key, kv.value, this.store.description, true).row.modRevision;
      tombstoneAt.set(id(key), mod);
      if (mod < revision) ops.push(del(kv.key));
    }
    let copiesRemoved = 0;
    if (this.copies.count > 0) {
      const byKey = new Map<string, { key: Buffer; entries: { etcdKey: Buffer; etcdRevision: number; row: KeyRow }[] }>();
      for (const kv of (await c.range({ ...copiedSpan(all, all) })).kvs) {
        const { key } = parseCopiedKey(kv.key);
        const e = byKey.get(id(key)) ?? { key, entries: [] };
        e.entries.push({ etcdKey: kv.key, etcdRevision: Number(kv.mod_revision), row: decodeValue(key, kv.value, this.store.description, true) });
        byKey.set(id(key), e);
      }
      const settled = [...byKey.values()];
      for (let i = 0; i < settled.length; i += PARALLEL_KEYS) {
        await Promise.all(
          settled.slice(i, i + PARALLEL_KEYS).map(async ({ key, entries }) => {
            const below = entries.filter((e) => e.row.modRevision <= revision).sort((a, b) => a.row.modRevision - b.row.modRevision);
            const newest = below.pop();
            if (!newest) return;
            const gone = [...below];
            const hidden = (tombstoneAt.get(id(key)) ?? 0) > newest.row.modRevision && (tombstoneAt.get(id(key)) ?? 0) <= revision;
            let carried = false;
            if (!hidden && !(newest.row.deleted && newest.row.modRevision < revision) && at >= 0) {
              // the key's own version at the compacted revision supersedes the copy when it is the copy (put
              // by it) or newer: a write that reached the etcd before the mover copied the key's history
              const own = (await c.range({ key, revision: String(at) })).kvs[0];
              carried = own !== undefined && (Number(own.mod_revision) >= newest.etcdRevision || decodeValue(key, own.value, this.store.description, true).modRevision >= newest.row.modRevision);
            }
            if (hidden || carried || (newest.row.deleted && newest.row.modRevision < revision)) gone.push(newest);
            for (const e of gone) ops.push(del(e.etcdKey));
            copiesRemoved += gone.length;
          }),
        );
      }
    }
    for (const kv of (await c.range(droppedSpan(all, all))).kvs) {
      if (at >= 0 && Number(kv.mod_revision) <= at && Number(kv.value.toString()) < revision) {
        ops.push(del(kv.key));
        this.drops.count--;
      }
    }
    if (ops.length > 0) await this.store.txns(ops);
    this.copies.count -= copiesRemoved;
    return ops.length;
  }

  /** The newest global revision the etcd holds of each key now: its version or its tombstone. */
  private async newestHeld(keys: Buffer[]): Promise<Map<string, number>> {
    const c = this.store.live();
    const out = new Map<string, number>();
    for (let i = 0; i < keys.length; i += PARALLEL_KEYS) {
      await Promise.all(
        keys.slice(i, i + PARALLEL_KEYS).map(async (key) => {
          const [live, dead] = await Promise.all([c.range({ key }), c.range({ key: deletedKey(key) })]);
          const mods = [live.kvs[0], dead.kvs[0]].filter((kv) => kv !== undefined).map((kv) => decodeStored(key, kv!.value, this.store.description, true).row.modRevision);
          if (mods.length > 0) out.set(id(key), Math.max(...mods));
        }),
      );
    }
    return out;
  }

  /**
   * Deletes each key's version, tombstone and copied rows at or below `upTo` (a newer write stays), at an
   * etcd revision no client sees, and records the drop. Returns how many keys it dropped.
   */
  async dropOut(keys: Buffer[], upTo: number): Promise<number> {
    if (keys.length === 0) return 0;
    return this.store.writeLock.run(async () => {
      await this.store.freshLocked();
      const c = this.store.live();
      const distinct = [...new Map(keys.map((k) => [id(k), k])).values()];
      // each key's drop in one etcd transaction: its record must carry the etcd revision of its deletes
      const groups: Op[][] = [];
      for (let i = 0; i < distinct.length; i += PARALLEL_KEYS) {
        await Promise.all(
          distinct.slice(i, i + PARALLEL_KEYS).map(async (key) => {
            const [live, dead, dropped] = await Promise.all([c.range({ key }), c.range({ key: deletedKey(key) }), c.range({ key: droppedKey(key) })]);
            const mod = (kv: EtcdKeyValue | undefined) => (kv ? decodeStored(key, kv.value, this.store.description, true).row.modRevision : Infinity);
            const ops: Op[] = [];
            groups.push(ops);
            if (mod(live.kvs[0]) <= upTo) ops.push(del(key));
            if (mod(dead.kvs[0]) <= upTo) ops.push(del(deletedKey(key)));
            ops.push(del(copiedKey(key, 0), copiedKey(key, upTo + 1)));
            const before = dropped.kvs[0] ? Number(dropped.kvs[0].value.toString()) : 0;
            ops.push(put(droppedKey(key), Buffer.from(String(Math.max(before, upTo)))));
            if (!dropped.kvs[0]) this.drops.count++;
          }),
        );
      }
      let rev = 0;
      for (let i = 0; i < groups.length; ) {
        const txn: Op[] = [];
        for (; i < groups.length && txn.length + groups[i]!.length <= MAX_TXN_OPS; i++) txn.push(...groups[i]!);
        rev = await this.store.txns(txn);
      }
      this.drops.etcdHigh = Math.max(this.drops.etcdHigh, rev);
      this.store.advanced(rev);
      return distinct.length;
    });
  }
}

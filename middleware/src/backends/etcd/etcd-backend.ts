/**
 * A real etcd (3.4 or newer, one member or a cluster) as a rule backend. Keys keep their names in the etcd;
 * values carry the global revisions in an envelope, and a durable map ties every global revision to the
 * etcd revision holding it (layout.ts); a commit writes its batch's global revisions together, in one etcd
 * revision when it fits. Reads at a global revision read the etcd at the mapped revision (inside a group:
 * minus the group's later changes, group-undo.ts); watch catch-up reads the etcd's history through a Watch
 * with prev_kv; compaction compacts the etcd.
 * Leases stay in the default backend (the middleware expires them and writes the deletes), so keys here
 * carry the lease ID in the envelope, not an etcd lease. Online migration into and out of the etcd, and the
 * tombstones it needs, are etcd-moves.ts.
 */
import type { EtcdEndpoint } from '../../topology/endpoint.js';
import type { BackendTLS } from '../../topology/schema.js';
import type { Backend, ChangeRow, CompactResult, KeyRow, LeaseRow, RangeQuery, WriteTxn } from '../backend.js';
import { BufferedWriteTxn } from '../buffered-txn.js';
import { NewestRows } from '../newest-rows.js';
import { WrittenKeys } from '../written-keys.js';
import type { MovableBackend } from '../movable.js';
import { Lock } from '../sql/lock.js';
import { EtcdClient, type EtcdEvent, type EtcdKeyValue } from './client.js';
import { EtcdMoves, type EtcdStore } from './etcd-moves.js';
import { undoAbove, undoneIn, type Undone } from './group-undo.js';
import {
  HEAD_KEY,
  INTERNAL_END,
  INTERNAL_PREFIX,
  REVISION_KEYS_END,
  REVISION_KEYS_START,
  decodeStored,
  decodeValue,
  deletedKey,
  encodeValue,
  isDeletedKey,
  keyOfDeleted,
  globalOfRevisionKey,
  isInternal,
  metaKey,
  revisionKey,
} from './layout.js';
import { etcdBackendMetrics } from './metrics.js';
import { RevisionMap } from './revision-map.js';
import { applyChain, type ChainStep } from './txn-chain.js';
import { MAX_TXN_BYTES, MAX_TXN_OPS, del, put, type Op } from './txn-ops.js';

/** etcd's `range_end` for "to the end of the keyspace". */
const ALL = Buffer.from([0]);

export interface EtcdBackendOptions {
  tls?: BackendTLS;
  /** Deadline of one etcd call, ms (0: none). */
  queryTimeoutMs: number;
}

function overlapsInternal(start: Buffer, end: Buffer | undefined): boolean {
  if (end === undefined) return isInternal(start);
  return Buffer.compare(start, INTERNAL_END) < 0 && (end.length === 0 || Buffer.compare(end, INTERNAL_PREFIX) > 0);
}

/** A transaction of a commit; the last one of a global revision carries its map entry. */
interface CommitStep extends ChainStep {
  /** The global revisions whose last transaction this is. */
  completes: number[];
  /** Etcd revision of the revision's first transaction, when it has several. */
  first?: number;
}

/** Groups whose etcd events reads inside them keep (group-undo.ts): an etcd revision's events never change. */
const GROUP_EVENTS_KEPT = 16;

/** The global revision of an etcd event's envelope (a put; for a tombstone, the delete it records). */
function envelopeGlobal(ev: EtcdEvent, where: string): number {
  const key = isDeletedKey(ev.kv.key) ? keyOfDeleted(ev.kv.key) : ev.kv.key;
  return decodeStored(key, ev.kv.value, where, true).row.modRevision;
}

export class EtcdBackend implements MovableBackend, EtcdStore {
  /** Write transactions read their keys ahead, in one round trip (`prefetch`). */
  readonly readsAhead = true;
  private client?: EtcdClient;
  private readonly map = new RevisionMap();
  /** A commit failed midway: the map may miss revisions that did commit; reload before using it. */
  private mapStale = true;
  /**
   * The etcd revision holding the state at the newest global revision of the map (after it, only meta
   * values and revision-map deletions, or a write still being committed, which reads must not see yet).
   */
  private head = 0;
  /** The commit head's value in the etcd (layout.ts), undefined while the key does not exist. */
  private headToken: string | undefined;
  readonly writeLock = new Lock();
  /** The newest rows its write transactions know without asking (newest-rows.ts). */
  readonly newest = new NewestRows(this.writeLock);
  /** The keys the etcd may hold rows of (written-keys.ts): read when the first write transaction begins. */
  readonly written = new WrittenKeys();
  readonly moves: EtcdMoves = new EtcdMoves(this);
  /** The events of the groups read inside of lately, by etcd revision (oldest first). */
  private readonly groupEvents = new Map<number, Promise<EtcdEvent[]>>();

  constructor(
    private readonly endpoint: EtcdEndpoint,
    readonly description: string,
    private readonly opts: EtcdBackendOptions,
  ) {}

  async open(): Promise<void> {
    if (this.client) return;
    const client = new EtcdClient({ hosts: this.endpoint.hosts, tls: this.endpoint.tls, backendTLS: this.opts.tls, timeoutMs: this.opts.queryTimeoutMs, description: this.description });
    try {
      const status = await client.status();
      const [major, minor] = status.version.split('.').map(Number);
      if (major !== 3 || (minor ?? 0) < 4) throw new Error(`${this.description}: etcd ${status.version} is not supported; use etcd 3.4 or newer`);
      this.client = client;
      await this.loadMap();
      await this.moves.load();
      await this.checkOnlyOurs();
    } catch (err) {
      this.client = undefined;
      client.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.writeLock.run(() => {
      this.client?.close();
      this.client = undefined;
    });
  }

  async maxRevision(): Promise<number> {
    await this.fresh();
    return this.map.maxGlobal;
  }

  async range(q: RangeQuery): Promise<KeyRow[]> {
    const c = this.live();
    await this.fresh();
    const at = this.etcdRevisionAt(q.revision);
    if (this.moves.beyondSnapshot(q.revision, at)) return this.moves.read(q, false);
    if (at < 0) return [];
    // inside a group: the keys it changed later come back as they were, and the etcd's rows of them go,
    // so the etcd is asked for as many more rows as that may remove
    const undo = await this.undoAt(q.revision);
    const undone = undo ? undoneIn(undo, q.start, q.end) : [];
    const internal = overlapsInternal(q.start, q.end);
    const res = await c.range({
      key: q.start,
      ...(q.end === undefined ? {} : { range_end: q.end.length === 0 ? ALL : q.end }),
      revision: String(at),
      limit: String(internal || q.limit === 0 ? 0 : q.limit + undone.length),
    });
    let rows = res.kvs.filter((kv) => !isInternal(kv.key)).map((kv) => decodeValue(kv.key, kv.value, this.description, q.keysOnly));
    if (undone.length > 0) {
      const changed = new Set(undone.map((u) => u.key.toString('latin1')));
      rows = rows.filter((r) => !changed.has(r.key.toString('latin1')));
      for (const u of undone) if (u.row) rows.push(q.keysOnly ? { ...u.row, value: Buffer.alloc(0) } : u.row);
      rows.sort((a, b) => Buffer.compare(a.key, b.key));
    }
    return q.limit > 0 ? rows.slice(0, q.limit) : rows;
  }

  async count(start: Buffer, end: Buffer | undefined, revision: number): Promise<number> {
    if (end === undefined) return (await this.range({ start, revision, limit: 1, keysOnly: true })).length;
    const c = this.live();
    await this.fresh();
    const at = this.etcdRevisionAt(revision);
    if (this.moves.beyondSnapshot(revision, at)) return (await this.moves.read({ start, end, revision, limit: 0, keysOnly: true }, false)).length;
    if (at < 0) return 0;
    const undo = await this.undoAt(revision);
    const undone = undo ? undoneIn(undo, start, end) : [];
    // inside a group: its later changes undone, a key present at one end and not the other counts or not
    const shift = undone.filter((u) => u.row).length - undone.filter((u) => u.atTop).length;
    const n = Number((await c.range({ key: start, range_end: end.length === 0 ? ALL : end, revision: String(at), count_only: true })).count) + shift;
    if (!overlapsInternal(start, end)) return n;
    const lo = Buffer.compare(start, INTERNAL_PREFIX) > 0 ? start : INTERNAL_PREFIX;
    const hi = end.length > 0 && Buffer.compare(end, INTERNAL_END) < 0 ? end : INTERNAL_END;
    return n - Number((await c.range({ key: lo, range_end: hi, revision: String(at), count_only: true })).count);
  }

  async changes(from: number, to: number, limit: number): Promise<ChangeRow[]> {
    await this.fresh();
    const spans = this.map.between(from, to);
    let own: { row: ChangeRow; etcdRevision: number }[] = [];
    if (spans.length > 0) {
      // each event's global revision is its envelope's (a group holds several); deletes count by their tombstone
      const inWindow = (ev: EtcdEvent) => {
        if (ev.type !== 'Put' || (isInternal(ev.kv.key) && !isDeletedKey(ev.kv.key)) || this.map.globalOf(Number(ev.kv.mod_revision)) === undefined) return false;
        const g = envelopeGlobal(ev, this.description);
        return g >= from && g <= to;
      };
      let counted = 0;
      let found = 0;
      const events = await this.live().history(spans[0]!.first, spans[spans.length - 1]!.last, (evs) => {
        for (; counted < evs.length; counted++) if (inWindow(evs[counted]!)) found++;
        return limit > 0 && found >= limit;
      });
      // a delete is reported from the tombstone put with it (etcd-moves.ts): etcd has no event for the delete
      // of a key it does not hold (one still in a migration source); the etcd's delete event gives prev_kv
      const deletedPrev = new Map<string, EtcdKeyValue | null | undefined>();
      const marked = new Set<string>();
      for (const ev of events) if (ev.type === 'Put' && isDeletedKey(ev.kv.key)) marked.add(`${ev.kv.mod_revision} ${keyOfDeleted(ev.kv.key).toString('latin1')}`);
      let sub = 0;
      let lastGlobal = 0;
      for (const ev of events) {
        const mapped = this.map.globalOf(Number(ev.kv.mod_revision));
        if (mapped === undefined) continue;
        const tombstone = ev.type === 'Put' && isDeletedKey(ev.kv.key);
        if (isInternal(ev.kv.key) && !tombstone) continue;
        const id = `${ev.kv.mod_revision} ${ev.kv.key.toString('latin1')}`;
        if (ev.type === 'Delete' && marked.has(id)) {
          deletedPrev.set(id, ev.prev_kv);
          continue;
        }
        // a delete without a tombstone was written before tombstones (and groups) were: its revision's only global
        const g = ev.type === 'Delete' ? mapped : envelopeGlobal(ev, this.description);
        if (g < from || g > to) continue;
        sub = g === lastGlobal ? sub + 1 : 0;
        lastGlobal = g;
        const row = tombstone ? this.tombstoneRow(ev, deletedPrev) : this.changeRow(ev, sub, g);
        own.push({ row, etcdRevision: Number(ev.kv.mod_revision) });
      }
      // a commit writes in this order already; the history stopped at an etcd revision boundary past `limit`
      own.sort((a, b) => a.row.modRevision - b.row.modRevision || a.row.sub - b.row.sub);
      if (limit > 0) own = own.slice(0, limit);
    }
    return this.moves.changes(own, from, to, limit);
  }

  /**
   * An etcd event as a change: the envelope's sub when it has one, else `counted` (the event's place in its
   * global revision). A delete here has no tombstone beside it (written before tombstones were kept).
   */
  private changeRow(ev: EtcdEvent, counted: number, global: number): ChangeRow {
    const prev = ev.prev_kv && ev.prev_kv.key?.length ? decodeValue(ev.prev_kv.key, ev.prev_kv.value, this.description) : undefined;
    if (ev.type === 'Put') {
      const { row, subKnown } = decodeStored(ev.kv.key, ev.kv.value, this.description);
      return { ...row, sub: subKnown ? row.sub : counted, prev };
    }
    return {
      key: ev.kv.key,
      value: Buffer.alloc(0),
      modRevision: global,
      sub: counted,
      createRevision: prev?.createRevision ?? 0,
      prevRevision: prev?.modRevision ?? 0,
      version: 0,
      lease: '0',
      deleted: true,
      prev,
    };
  }

  /** The put of a key's tombstone as its delete, with the deleted version from the etcd's delete event when it had one. */
  private tombstoneRow(ev: EtcdEvent, deletedPrev: Map<string, EtcdKeyValue | null | undefined>): ChangeRow {
    const key = keyOfDeleted(ev.kv.key);
    const row = decodeValue(key, ev.kv.value, this.description);
    const before = deletedPrev.get(`${ev.kv.mod_revision} ${key.toString('latin1')}`);
    return { ...row, prev: before && before.key?.length ? decodeValue(key, before.value, this.description) : undefined };
  }

  async begin(): Promise<WriteTxn> {
    const release = await this.writeLock.acquire();
    try {
      this.live();
      this.written.loadInBackground(
        (start, limit) => this.moves.rangeWithTombstones({ start, end: Buffer.alloc(0), revision: Number.MAX_SAFE_INTEGER, limit, keysOnly: true }),
        () => this.client !== undefined,
        this.description,
      );
      if (this.mapStale) await this.loadMap();
    } catch (err) {
      release();
      throw err;
    }
    return new BufferedWriteTxn(this, release);
  }

  /**
   * Writes the rows of a transaction (`writeRows`). The keys of `readAhead` are read while it commits: the
   * commit writes none of them, and nobody else changes the etcd while the write lock is held.
   */
  async commitRows(rows: KeyRow[], meta: Map<string, Buffer>, readAhead?: Buffer[]): Promise<(KeyRow | undefined)[] | void> {
    const reading = readAhead ? this.latestMany(readAhead).catch(() => undefined) : undefined;
    await this.writeRows(rows, meta);
    return reading;
  }

  /**
   * Writes the rows of a transaction: the global revisions of the batch together, each with its map entry,
   * in as few etcd transactions as etcd takes (MAX_TXN_OPS, MAX_TXN_BYTES), normally one, so several global
   * revisions share one etcd revision (a group, layout.ts). Then its meta values.
   *
   * Why: one etcd transaction per global revision, sent pipelined, cost about 4 rounds per batch with 1.5
   * resent transactions per applied one (etcd reorders concurrent requests), each round a raft fsync: the
   * etcd was the slowest database of every routed batch. A group is one round trip and one fsync. The price
   * is paid by reads inside a group, rarer (the watermark moves past whole batches): they undo the group's
   * later changes from the etcd's events of the group (group-undo.ts), which needs each key changed at most
   * once per etcd transaction (etcd refuses a key twice in one anyway): a global revision that writes a key
   * the transaction holds already starts the next one. Transactions of one batch are awaited one by one
   * (txn-chain.ts), a rare case: a batch larger than one, or one revision larger than one (its parts go
   * first, then the map entry, which names the first part's etcd revision).
   */
  private async writeRows(rows: KeyRow[], meta: Map<string, Buffer>): Promise<void> {
    etcdBackendMetrics.commits.inc({ backend: this.description });
    const byRevision = new Map<number, KeyRow[]>();
    for (const r of rows) {
      const g = byRevision.get(r.modRevision);
      if (g) g.push(r);
      else byRevision.set(r.modRevision, [r]);
    }
    const bytes = (ops: Op[]) => ops.reduce((n, op) => n + ('request_put' in op ? op.request_put.key.length + op.request_put.value.length : op.request_delete_range.key.length), 0);
    try {
      let group: { ops: Op[]; globals: number[]; keys: Set<string>; bytes: number } = { ops: [], globals: [], keys: new Set(), bytes: 0 };
      const apply = async (steps: CommitStep[]): Promise<number[]> => {
        const revisions = await applyChain(this.live(), this.headToken, steps, this.description);
        steps.forEach((step, i) => {
          for (const global of step.completes) this.map.add({ global, first: step.first ?? revisions[i]!, last: revisions[i]! });
          if (step.completes.length > 0) this.head = revisions[i]!;
          this.headToken = step.token;
        });
        return revisions;
      };
      const flush = async () => {
        if (group.globals.length === 0) return;
        const { ops, globals } = group;
        group = { ops: [], globals: [], keys: new Set(), bytes: 0 };
        // its top global revision names the transaction: unique, as globals ascend
        await apply([{ ops: [...ops, ...globals.map((g) => put(revisionKey(g), Buffer.alloc(0)))], token: String(globals[globals.length - 1]), completes: globals }]);
      };
      for (const [global, revRows] of [...byRevision.entries()].sort((a, b) => a[0] - b[0])) {
        revRows.sort((a, b) => a.sub - b.sub);
        // etcd keeps no tombstones: each delete leaves one beside the key (etcd-moves.ts)
        const ops = revRows.flatMap((r) => (r.deleted ? [del(r.key), put(deletedKey(r.key), encodeValue(r))] : [put(r.key, encodeValue(r))]));
        const keys = revRows.map((r) => r.key.toString('latin1'));
        const size = bytes(ops);
        // room for the map entries of the group and this revision, and the head
        if (ops.length <= MAX_TXN_OPS - 2 && size <= MAX_TXN_BYTES) {
          const full = group.ops.length + ops.length + group.globals.length + 2 > MAX_TXN_OPS || group.bytes + size > MAX_TXN_BYTES;
          if (full || keys.some((k) => group.keys.has(k))) await flush();
          group.ops.push(...ops);
          group.globals.push(global);
          for (const k of keys) group.keys.add(k);
          group.bytes += size;
          continue;
        }
        await flush();
        if (ops.length <= MAX_TXN_OPS - 2) {
          // larger than a group may be, yet one transaction: alone
          await apply([{ ops: [...ops, put(revisionKey(global), Buffer.alloc(0))], token: String(global), completes: [global] }]);
          continue;
        }
        // more rows than one transaction takes: the parts go first, then the map entry, which names the
        // first part's etcd revision
        const parts: CommitStep[] = [];
        let i = 0;
        for (let part = 0; ops.length - i > MAX_TXN_OPS - 2; i += MAX_TXN_OPS - 1, part++) parts.push({ ops: ops.slice(i, i + MAX_TXN_OPS - 1), token: `${global}.${part}`, completes: [] });
        const first = (await apply(parts))[0]!;
        await apply([{ ops: [...ops.slice(i), put(revisionKey(global), Buffer.from(String(first)))], token: String(global), completes: [global], first }]);
      }
      await flush();
      if (meta.size > 0) await this.txn([...meta].map(([name, value]) => put(metaKey(name), value)));
    } catch (err) {
      this.mapStale = true;
      throw err;
    }
  }

  private async txn(ops: Op[]): Promise<number> {
    const res = await this.live().txn({ compare: [], success: ops, failure: [] });
    return Number(res.header.revision);
  }

  async revert(from: number, to: number): Promise<void> {
    const release = await this.writeLock.acquire();
    try {
      await this.loadMap();
      const spans = this.map.between(from, to);
      if (spans.length === 0) return;
      // a revert takes back whole commits (a batch's revisions): a group is never cut, as the globals left in
      // it would read its reverted changes
      const below = this.map.floor(from - 1);
      const top = spans[spans.length - 1]!;
      const cut = below && below.last >= spans[0]!.first ? below.global : this.map.midGroup(top.global) ? this.map.between(top.global + 1, Infinity)[0]!.global : undefined;
      if (cut !== undefined) {
        throw new Error(`${this.description}: cannot revert global revisions ${from}-${to}: global revision ${cut} was committed in the same etcd transaction as one of them; a revert must take back whole commits`);
      }
      const events = await this.live().history(spans[0]!.first, spans[spans.length - 1]!.last, () => false);
      // the version before the first change of each key comes back (keys created meanwhile go), and the
      // tombstone before the first one put
      const restore = new Map<string, { key: Buffer; prev?: EtcdKeyValue | null }>();
      const restoreTombstone = new Map<string, { key: Buffer; prev?: EtcdKeyValue | null }>();
      for (const ev of events) {
        const mapped = this.map.globalOf(Number(ev.kv.mod_revision));
        if (mapped === undefined) continue;
        if (ev.type === 'Put' && isDeletedKey(ev.kv.key)) {
          const key = keyOfDeleted(ev.kv.key);
          const k = key.toString('latin1');
          if (!restoreTombstone.has(k)) restoreTombstone.set(k, { key: ev.kv.key, prev: ev.prev_kv });
          // without a delete event (the key was not here) the key is restored as absent
          if (!restore.has(k)) restore.set(k, { key });
          continue;
        }
        if (isInternal(ev.kv.key)) continue;
        const k = ev.kv.key.toString('latin1');
        if (!restore.has(k)) restore.set(k, { key: ev.kv.key, prev: ev.prev_kv });
      }
      const ops: Op[] = [...restore.values(), ...restoreTombstone.values()].map((r) => (r.prev && r.prev.key?.length ? put(r.key, r.prev.value) : del(r.key)));
      for (const s of spans) ops.push(del(revisionKey(s.global)));
      // a chain too: it moves the head, so a write of the failed attempt still in flight cannot apply after
      // it. The etcd revision read makes the tokens of a retried revert differ from those of an earlier try.
      const steps: ChainStep[] = [];
      const token = `revert ${from}-${to} at ${this.head}`;
      for (let i = 0; i < ops.length; i += MAX_TXN_OPS - 1) steps.push({ ops: ops.slice(i, i + MAX_TXN_OPS - 1), token: `${token}.${steps.length}` });
      const revisions = await applyChain(this.live(), this.headToken, steps, this.description);
      this.headToken = steps[steps.length - 1]!.token;
      this.map.remove(new Set(spans.map((s) => s.global)));
      this.head = revisions[revisions.length - 1]!;
    } catch (err) {
      this.mapStale = true;
      throw err;
    } finally {
      release();
    }
  }

  /** After a failure: the map is read again, so revisions that did commit are known. */
  async recover(): Promise<void> {
    if (this.client) await this.writeLock.run(() => this.loadMap());
  }

  /**
   * Compacts the etcd at the etcd revision holding `revision` (at the one before, when `revision` itself is
   * stored here, so a watch starting there still reads it, or when it is inside a group, whose reads need
   * the etcd revision before the group: group-undo.ts) and deletes the map entries below it.
   */
  async compact(revision: number): Promise<CompactResult> {
    return this.writeLock.run(async () => {
      if (this.mapStale) await this.loadMap();
      const floor = this.map.floor(revision);
      if (!floor) return { deleted: 0, done: true };
      const below = this.map.between(0, floor.global - 1).length;
      if (below > 0) await this.txn([del(REVISION_KEYS_START, revisionKey(floor.global))]);
      const at = floor.global === revision || this.map.midGroup(revision) ? floor.first - 1 : floor.last;
      if (at > 0) {
        try {
          await this.live().compact(at);
        } catch (err) {
          // compacted there (or beyond) already: the etcd's own compaction or an earlier run
          if (!/compacted/.test((err as Error).message)) throw err;
        }
      }
      // what past migrations left beside the keys that no read from `revision` on needs (etcd-moves.ts)
      const side = await this.moves.compact(revision);
      this.map.dropBelow(floor.global);
      this.groupEvents.clear();
      return { deleted: below + side, done: true };
    });
  }

  async getMeta(name: string): Promise<Buffer | undefined> {
    const res = await this.live().range({ key: metaKey(name) });
    return res.kvs[0]?.value;
  }

  async leases(): Promise<LeaseRow[]> {
    return [];
  }

  async leasedKeys(): Promise<{ key: Buffer; lease: string }[]> {
    const out: { key: Buffer; lease: string }[] = [];
    for (const [start, end] of [
      [Buffer.alloc(1), INTERNAL_PREFIX],
      [INTERNAL_END, ALL],
    ] as const) {
      const res = await this.live().range({ key: start, range_end: end });
      for (const kv of res.kvs) {
        const row = decodeValue(kv.key, kv.value, this.description, true);
        if (row.lease !== '0') out.push({ key: row.key, lease: row.lease });
      }
    }
    return out;
  }

  async sizeBytes(): Promise<number> {
    return Number((await this.live().status()).dbSize);
  }

  /**
   * The newest row of each of `keys`, its tombstone included (undefined: never written here, or compacted),
   * as every backend's `WriteTxn.latest` answers: while keys move, the owner's tombstone must beat an older
   * live row still in the source. Read in etcd transactions of range requests sent together (the key and
   * its tombstone key): one round trip for a whole write batch instead of one per request.
   */
  async latestMany(keys: Buffer[]): Promise<(KeyRow | undefined)[]> {
    const chunks: Buffer[][] = [];
    const perTxn = Math.floor(MAX_TXN_OPS / 2);
    for (let i = 0; i < keys.length; i += perTxn) chunks.push(keys.slice(i, i + perTxn));
    const answers = await Promise.all(
      chunks.map((chunk) =>
        this.live().txn({ compare: [], success: chunk.flatMap((key) => [{ request_range: { key } }, { request_range: { key: deletedKey(key) } }]), failure: [] }),
      ),
    );
    return answers.flatMap((res, c) =>
      chunks[c]!.map((key, i) => this.newestOf(key, res.responses[2 * i]?.response_range?.kvs[0], res.responses[2 * i + 1]?.response_range?.kvs[0])),
    );
  }

  /** The newest row of `key`, its tombstone included (undefined: never written here, or compacted). */
  async latest(key: Buffer): Promise<KeyRow | undefined> {
    return (await this.latestMany([key]))[0];
  }

  /** The newer of a key's live version and its tombstone (etcd keeps none: each delete leaves one beside the key). */
  private newestOf(key: Buffer, live: EtcdKeyValue | undefined, tombstone: EtcdKeyValue | undefined): KeyRow | undefined {
    const a = live && decodeValue(live.key, live.value, this.description);
    const b = tombstone && decodeValue(key, tombstone.value, this.description);
    if (!a) return b;
    if (!b) return a;
    return b.modRevision > a.modRevision ? b : a;
  }

  /**
   * The etcd revision to read for global `revision`; -1 when nothing was written at or below it. Inside a
   * group (`undoAt`), the group's: it holds changes above `revision` too.
   */
  etcdRevisionAt(revision: number): number {
    if (this.map.size === 0) return -1;
    if (revision >= this.map.maxGlobal) return this.head;
    return this.map.floor(revision)?.last ?? -1;
  }

  /** The newest etcd revision holding nothing above global `revision` (inside a group: the one before it); -1 for none. */
  settledAt(revision: number): number {
    const at = this.etcdRevisionAt(revision);
    return at >= 0 && revision < this.map.maxGlobal && this.map.midGroup(revision) ? at - 1 : at;
  }

  /**
   * Inside a group (a global revision above `revision` shares its etcd revision): per key, what the group
   * changed above `revision`, as it was at `revision` (group-undo.ts). Undefined outside one: the etcd
   * revision holds exactly the state at `revision`. The map is fresh.
   */
  async undoAt(revision: number): Promise<Map<string, Undone> | undefined> {
    if (revision >= this.map.maxGlobal || !this.map.midGroup(revision)) return undefined;
    const at = this.map.floor(revision)!.last;
    let events = this.groupEvents.get(at);
    if (!events) {
      events = this.live().history(at, at, () => false);
      this.groupEvents.set(at, events);
      events.catch(() => this.groupEvents.get(at) === events && this.groupEvents.delete(at));
      if (this.groupEvents.size > GROUP_EVENTS_KEPT) this.groupEvents.delete(this.groupEvents.keys().next().value!);
    }
    return undoAbove(await events, revision, this.description);
  }

  /**
   * The oldest global revision still readable and the oldest etcd revision its reads need (inside a group:
   * the one before it, which compaction keeps); undefined when none is.
   */
  oldestReadable(): { global: number; etcdRevision: number } | undefined {
    const first = this.map.first;
    if (!first) return undefined;
    return { global: first.global, etcdRevision: this.map.midGroup(first.global) ? first.first - 1 : first.last };
  }

  /** A migration's copy or drop committed at etcd revision `rev` (write lock held): reads at the newest revision see it. */
  advanced(rev: number): void {
    this.head = Math.max(this.head, rev);
  }

  /** Reloads a stale map; the caller holds the write lock. */
  async freshLocked(): Promise<void> {
    if (this.mapStale) await this.loadMap();
  }

  /** Runs `ops` in etcd transactions of at most MAX_TXN_OPS, in order; the etcd revision of the last. */
  async txns(ops: Op[]): Promise<number> {
    let rev = 0;
    for (let i = 0; i < ops.length; i += MAX_TXN_OPS) rev = await this.txn(ops.slice(i, i + MAX_TXN_OPS));
    return rev;
  }

  /** Reloads a stale map, with no commit in flight (reads; begin() reloads under the lock it holds). */
  async fresh(): Promise<void> {
    if (this.mapStale) await this.writeLock.run(async () => (this.mapStale ? this.loadMap() : undefined));
  }

  /** Reads the map; the caller holds the write lock or knows no commit is in flight. */
  private async loadMap(): Promise<void> {
    const headKv = (await this.live().range({ key: HEAD_KEY })).kvs[0];
    const res = await this.live().range({ key: REVISION_KEYS_START, range_end: REVISION_KEYS_END });
    this.headToken = headKv?.value.toString();
    this.head = Number(res.header.revision);
    this.map.load(
      res.kvs.map((kv) => {
        const last = Number(kv.mod_revision);
        const first = kv.value.length > 0 ? Number(kv.value.toString()) : last;
        return { global: globalOfRevisionKey(kv.key), first, last };
      }),
    );
    this.mapStale = false;
  }

  /** Refuses an etcd holding keys the middleware did not write (they have no global revisions). */
  private async checkOnlyOurs(): Promise<void> {
    for (const [start, end] of [
      [Buffer.alloc(1), INTERNAL_PREFIX],
      [INTERNAL_END, ALL],
    ] as const) {
      const kv = (await this.live().range({ key: start, range_end: end, limit: '1' })).kvs[0];
      if (kv) decodeValue(kv.key, kv.value, this.description, true);
    }
  }

  live(): EtcdClient {
    if (!this.client) throw new Error(`${this.description}: the backend is not open (call open() first, and not after close())`);
    return this.client;
  }
}

/**
 * MariaDB's snapshot isolation (`innodb_snapshot_isolation`, ON by default since 11.6.2, so in 11.8 LTS):
 * once a transaction has taken its read view (its first plain SELECT), a locking read, UPDATE or DELETE that
 * meets a row changed after that view fails with ER_CHECKREAD (1020, "Record has changed since last read").
 * kine's compaction (a read, then a DELETE, in one transaction) failed that way and its database grew
 * (kine #721, #745).
 *
 * Here the setting is ON for the backend's own connections, and every writer that can meet another on the
 * same rows runs at once: write batches (puts, deletes, overwrites; fenced or not, rows held or not, reads
 * inside the transaction), compaction, reverts, lease writes and a migration's copies and drops; then the
 * real store with leader fencing, leases and compaction through the write queue. Nothing may fail, every
 * acknowledged write must be there with its value and revision, and compaction must remove what it may.
 *
 * The product passes because no transaction of it takes a read view and then locks a row another one may
 * have changed meanwhile: compaction runs as autocommit statements (scan, then DELETE); reverts and migration
 * drops delete before reading anything; the transactions that read first only insert new (name, rev) rows,
 * or upsert meta and lease rows that only the serialised write transactions change (the leader election
 * locks its rows before reading them). The first test makes the backend's own write transaction break that
 * rule and gets 1020, which shows the setting is in effect and the workloads could fail.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mysql from 'mysql2/promise';
import { inWriteTxn, type KeyRow, type LeaseRow } from '../../middleware/src/backends/backend.js';
import type { ServerDriver, ServerLogStore } from '../../middleware/src/backends/sql/server-store.js';
import type { ServerWriteTxn } from '../../middleware/src/backends/sql/server-write-txn.js';
import { LeaderElection, META_LEADER } from '../../middleware/src/leader/election.js';
import { Store } from '../../middleware/src/mvcc/store.js';
import { parseEndpoint } from '../../middleware/src/topology/endpoint.js';
import { b, prefixEnd } from '../support/bytes.js';
import { MYSQL_URL, skipUnless } from '../support/env.js';
import { mysqlStore, type StoreHarness } from './support/stores.js';

const ER_CHECKREAD = 1020;
const ER_LOCK_DEADLOCK = 1213;
const SET_ON = 'SET SESSION innodb_snapshot_isolation = ON';
const MAX = Number.MAX_SAFE_INTEGER;
const ALL = { start: Buffer.from([0]), end: Buffer.alloc(0) };

/** Skips unless MariaDB is up and has the variable (MariaDB 10.6.18, 10.11.8, 11.4.2 and later; MySQL has none). */
async function snapshotIsolationSkip(): Promise<string | false> {
  const down = await skipUnless('mysql');
  if (down) return down;
  const e = parseEndpoint(MYSQL_URL);
  if (e.kind !== 'mysql') throw new Error(`HARIKUBE_TEST_MYSQL_URL is not a MySQL endpoint: ${MYSQL_URL}`);
  const conn = await mysql.createConnection({ host: e.host, port: e.port, user: e.user, password: e.password });
  try {
    await conn.query('SELECT @@innodb_snapshot_isolation');
    return false;
  } catch (err) {
    return `the server at ${e.host}:${e.port} has no innodb_snapshot_isolation (${(err as Error).message}): it needs MariaDB 10.6.18, 10.11.8, 11.4.2 or later`;
  } finally {
    await conn.end();
  }
}

const skip = await snapshotIsolationSkip();

type Factory = (config: unknown) => unknown;
type CoreConnection = { query(sql: string, cb: (err: Error | null) => void): unknown };

/**
 * Turns innodb_snapshot_isolation ON in every session mysql2 opens to one of `databases` (the backends'
 * pools and write connections), as a server whose default is ON would. Per session rather than SET GLOBAL, so
 * nothing else using this server is affected. Returns the undo.
 */
function snapshotIsolationFor(databases: Set<string>, failures: Error[]): () => void {
  const lib = mysql as unknown as { createPool: Factory; createConnection: Factory };
  const { createPool, createConnection } = lib;
  const ours = (config: unknown) => databases.has(String((config as { database?: string } | undefined)?.database));
  lib.createConnection = async (config) => {
    const conn = (await createConnection(config)) as mysql.Connection;
    if (ours(config)) await conn.query(SET_ON);
    return conn;
  };
  lib.createPool = (config) => {
    const pool = createPool(config) as mysql.Pool;
    // The pool emits 'connection' before it hands a new connection out, so this statement is queued ahead of
    // the backend's first one on it.
    if (ours(config)) pool.on('connection', (conn) => void (conn as unknown as CoreConnection).query(SET_ON, (err) => err && failures.push(err)));
    return pool;
  };
  return () => Object.assign(lib, { createPool, createConnection });
}

/** The MySQL error number of `err` or of an error it wraps (the backend wraps driver errors in `cause`). */
function errnoOf(err: unknown): number | undefined {
  for (let e = err, depth = 0; e && depth < 10; e = (e as { cause?: unknown }).cause, depth++) {
    const n = (e as { errno?: unknown }).errno;
    if (typeof n === 'number') return n;
  }
  return undefined;
}

/**
 * Runs `fn` again while InnoDB picks it as a deadlock victim (which rolls the whole transaction back, so the
 * outcome is known), as the product's callers in effect do: the write queue fails only that request (the
 * client retries), the mover backs off and retries, compaction resumes on its next call. They come from
 * compaction running at once with write batches on one backend (the store never does that: compaction is a
 * step of its write queue) or with a migration's copies, and happen with the setting OFF as well. Counts
 * them in `deadlocks` by `what`.
 */
async function retryDeadlocks<T>(deadlocks: Map<string, number>, what: string, fn: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (errnoOf(err) !== ER_LOCK_DEADLOCK) throw err;
      const n = (deadlocks.get(what) ?? 0) + 1;
      if (n > 1000) throw err;
      deadlocks.set(what, n);
    }
  }
}

/** Runs the loops together to their ends (a failure stops the others at their next step); fails naming every 1020, else with the first error. */
async function runAll(loops: Record<string, (stopped: () => boolean) => Promise<void>>): Promise<void> {
  let stop = false;
  const results = await Promise.allSettled(
    Object.entries(loops).map(async ([name, loop]) => {
      try {
        await loop(() => stop);
      } catch (err) {
        stop = true;
        throw new Error(`${name}: ${(err as Error).message}`, { cause: err });
      }
    }),
  );
  const failed = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
  const changed = failed.filter((e) => errnoOf(e) === ER_CHECKREAD);
  assert.equal(changed.length, 0, `error 1020 (snapshot isolation) in: ${changed.map((e) => e.message).join('; ')}`);
  if (failed.length > 0) throw failed[0];
}

/** A deterministic pseudo-random sequence, so a failure can be replayed. */
function random(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

const id = (key: Buffer) => key.toString('latin1');
const live = (row: KeyRow | undefined) => (row && !row.deleted ? row : undefined);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function kvRows(h: StoreHarness): Promise<number> {
  return Number((await h.sql('SELECT COUNT(*) AS n FROM kv'))[0]!.n);
}

/** Rows a compaction at `revision` must leave of keys whose newest rows are `newest`: live ones, and tombstones at exactly `revision`. */
function rowsLeft(newest: Iterable<KeyRow>, revision: number): number {
  let n = 0;
  for (const r of newest) if (!r.deleted || r.modRevision === revision) n++;
  return n;
}

/** Compacts `be` to `revision` until done (a fresh backend walks from the start, reaching rows copied below an earlier compaction). */
async function compactFully(be: ServerLogStore, revision: number): Promise<void> {
  for (let i = 0; i < 1000; i++) if ((await be.compact(revision, 1000, Date.now() + 60_000)).done) return;
  assert.fail(`compaction to ${revision} of ${be.description} did not finish in 1000 calls`);
}

type Op = { key: Buffer; value: Buffer; lease?: string } | { key: Buffer; del: true };

interface BatchOptions {
  /** Send BEGIN first by locking a meta row (as the leader fence does): every read below then runs in the transaction's read view. */
  fence?: boolean;
  /** Hold the rows until commit (the write queue's group commit). */
  hold?: boolean;
  /** Read a key range inside the transaction after the writes (held rows of it go out first). */
  rangeAfter?: Buffer;
  grant?: LeaseRow;
  revoke?: string;
}

/**
 * The revision counter and the newest committed row of every key, with which backend holds it: what the
 * middleware's sequencer and write path would know. One writer per backend, so each backend's newest
 * committed revision has nothing below it still in flight (compaction must not pass an uncommitted row).
 */
class Model {
  last = 0;
  readonly newest = new Map<string, { row: KeyRow; at: ServerLogStore }>();
  readonly committed = new Map<ServerLogStore, number>();
  readonly leases = new Set<string>();
  /** What to call each backend in reports. */
  readonly names = new Map<ServerLogStore, string>();
  /** Deadlock victims retried, by what they were (see retryDeadlocks). */
  readonly deadlocks = new Map<string, number>();

  allocate(): number {
    return ++this.last;
  }

  newestIn(be: ServerLogStore): KeyRow[] {
    return [...this.newest.values()].filter((e) => e.at === be).map((e) => e.row);
  }

  /** One write transaction of `ops` at a new revision (another one if it was a deadlock victim); returns the revision. */
  batch(be: ServerLogStore, ops: Op[], o: BatchOptions = {}): Promise<number> {
    return retryDeadlocks(this.deadlocks, `write batch in ${this.names.get(be) ?? be.description}`, () => this.attempt(be, ops, o));
  }

  /** One try: reads each key's newest row in the transaction (checked against the model), writes what the middleware would. */
  private async attempt(be: ServerLogStore, ops: Op[], o: BatchOptions): Promise<number> {
    const rev = this.allocate();
    const rows: KeyRow[] = [];
    const tx = (await be.begin()) as ServerWriteTxn;
    try {
      if (o.fence) await tx.lockMeta('si_fence');
      if (o.hold) tx.holdWrites();
      await tx.prefetch(ops.map((op) => op.key));
      for (const op of ops) {
        const prev = live(await tx.latest(op.key));
        const known = live(this.newest.get(id(op.key))?.row);
        assert.equal(prev?.modRevision, known?.modRevision, `${be.description}: newest live row of ${op.key} read inside a write transaction`);
        if ('del' in op && !prev) continue;
        const row: KeyRow =
          'del' in op
            ? { key: op.key, value: Buffer.alloc(0), modRevision: rev, sub: rows.length, createRevision: prev!.createRevision, prevRevision: prev!.modRevision, version: 0, lease: '0', deleted: true }
            : {
                key: op.key,
                value: op.value,
                modRevision: rev,
                sub: rows.length,
                createRevision: prev ? prev.createRevision : rev,
                prevRevision: prev ? prev.modRevision : 0,
                version: prev ? prev.version + 1 : 1,
                lease: op.lease ?? '0',
                deleted: false,
              };
        await tx.insert([row]);
        rows.push(row);
      }
      if (o.grant) await tx.putLease(o.grant);
      if (o.revoke) await tx.deleteLease(o.revoke);
      if (o.rangeAfter) await tx.range({ start: o.rangeAfter, end: prefixEnd(o.rangeAfter), revision: rev, limit: 0 });
      await tx.commit();
    } catch (err) {
      await tx.rollback();
      throw err;
    }
    for (const row of rows) this.newest.set(id(row.key), { row, at: be });
    if (o.grant) this.leases.add(o.grant.id);
    if (o.revoke) this.leases.delete(o.revoke);
    this.committed.set(be, rev);
    return rev;
  }
}

/** Live keys a backend must hold, as `stored` lists them. */
function expectLive(m: Model, be: ServerLogStore): string[] {
  return m
    .newestIn(be)
    .filter((r) => !r.deleted)
    .sort((x, y) => Buffer.compare(x.key, y.key))
    .map((r) => `${r.key} @${r.modRevision} = ${r.value}`);
}

/** Every live key the backend holds, with its revision and value. */
async function stored(be: ServerLogStore): Promise<string[]> {
  return (await be.range({ ...ALL, revision: MAX, limit: 0 })).map((r) => `${r.key} @${r.modRevision} = ${r.value}`);
}

/**
 * Compacts `be` again and again in small batches, to `upTo()` (never lower than before), until `finished`.
 * Compaction must not pass a row still being written, so `upTo` is at most the backend's newest committed
 * revision (Model.committed).
 */
async function compactLoop(be: ServerLogStore, m: Model, upTo: () => number, finished: () => boolean, stats: { deleted: number; calls: number }): Promise<void> {
  let target = 0;
  while (!finished()) {
    target = Math.max(target, upTo());
    const r = target > 0 ? await retryDeadlocks(m.deadlocks, `compaction of ${m.names.get(be) ?? be.description}`, () => be.compact(target, 25, Date.now() + 100)) : { deleted: 0, done: true };
    stats.deleted += r.deleted;
    stats.calls++;
    if (r.done) await sleep(2); // caught up: let the writers get ahead again
  }
}

describe('mysql backend with innodb_snapshot_isolation=ON', { skip }, () => {
  const harnesses: StoreHarness[] = [];
  const setFailures: Error[] = [];
  let restore: (() => void) | undefined;
  let probe: StoreHarness, source: StoreHarness, target: StoreHarness, storeDb: StoreHarness;

  before(async () => {
    for (let i = 0; i < 4; i++) harnesses.push(await mysqlStore());
    [probe, source, target, storeDb] = harnesses as [StoreHarness, StoreHarness, StoreHarness, StoreHarness];
    restore = snapshotIsolationFor(new Set(harnesses.map((h) => h.name)), setFailures);
  });

  after(async () => {
    restore?.();
    for (const h of harnesses) await h.dispose().catch(() => undefined);
  });

  const open = async (h: StoreHarness) => {
    const be = h.backend() as ServerLogStore;
    await be.open();
    return be;
  };

  test('the setting is ON on the pool and the write connection, and a read-then-delete transaction meets error 1020', async () => {
    const be = await open(probe);
    try {
      // several pool connections at once: each is a new session that must have the setting
      const pool = (be as unknown as { driver: ServerDriver }).driver.pool;
      const sessions = await Promise.all(
        Array.from({ length: 4 }, () => pool.query('SELECT @@session.innodb_snapshot_isolation AS si, CONNECTION_ID() AS conn', [])),
      );
      assert.deepEqual(sessions.map((r) => Number(r[0]!.si)), [1, 1, 1, 1], 'innodb_snapshot_isolation on the backend pool connections');
      assert.ok(new Set(sessions.map((r) => String(r[0]!.conn))).size > 1, 'the reads ran on more than one pool connection');
      const write = await inWriteTxn({ begin: async () => (await be.begin()) as ServerWriteTxn }, (tx) => tx.query('SELECT @@session.innodb_snapshot_isolation AS si', []));
      assert.equal(Number(write[0]!.si), 1, 'innodb_snapshot_isolation on the backend write connection');
      assert.deepEqual(setFailures, []);

      // The pattern the backend avoids: a transaction reads (taking its read view), compaction deletes a row it
      // covers, then the transaction deletes rows: the server refuses with 1020.
      const m = new Model();
      const k = b('probe/k');
      await m.batch(be, [{ key: k, value: b('v1') }]);
      const last = await m.batch(be, [{ key: k, value: b('v2') }]);
      const tx = (await be.begin()) as ServerWriteTxn;
      try {
        await tx.lockMeta('si_probe'); // BEGIN, as the leader fence sends it; the read below takes the view
        assert.equal((await tx.range({ start: k, revision: last, limit: 0 }))[0]?.value.toString(), 'v2');
        assert.equal((await be.compact(last, 100, Date.now() + 30_000)).deleted, 1, 'compaction removed the superseded row');
        await assert.rejects(tx.execute('DELETE FROM kv WHERE name = ? AND rev <= ?', [k, last]), (err) => {
          assert.equal(errnoOf(err), ER_CHECKREAD, `expected error 1020, got: ${(err as Error).message}`);
          return true;
        });
      } finally {
        await tx.rollback();
      }
    } finally {
      await be.close();
    }
  });

  test('write batches, leases, reverts and a migration, all while both databases compact: no error, nothing lost, old rows gone', async (t) => {
    const m = new Model();
    const src = await open(source);
    const dst = await open(target);
    m.names.set(src, 'source').set(dst, 'target');
    try {
      const pick = random(721);
      const HOT = Array.from({ length: 16 }, (_, i) => b(`k/${String(i).padStart(2, '0')}`));
      const SOURCE_BATCHES = 450;
      /** Source batches before the migration starts; the keys it moves are written before. */
      const BEFORE_MIGRATION = 150;
      /** Generations of 8 keys the migration moves, each written in three batches before it starts. */
      const GENERATIONS = 16;
      const TARGET_BATCHES = 150;
      /** How far the source's compaction stays behind before the migration: the backlog it works off while keys move. */
      const LAG = 100;
      const stats = { src: { deleted: 0, calls: 0 }, dst: { deleted: 0, calls: 0 } };
      /** Migration generations whose writes are done, waiting for the mover; then the keys it moved. */
      const ready: number[] = [];
      const moved: Buffer[] = [];
      /** First revision of the migration (0 before it starts). */
      let since = 0;
      let sourceDone = false;
      let moverDone = false;
      let targetDone = false;
      let reverts = 0;

      const hotOps = (salt: string): Op[] => {
        const keys = new Set<number>();
        while (keys.size < 3 + pick(3)) keys.add(pick(HOT.length));
        return [...keys].map((i) => (pick(10) < 3 ? { key: HOT[i]!, del: true } : { key: HOT[i]!, value: b(`${salt}:${HOT[i]}:${pick(1e6)}`) }));
      };
      const modes = (i: number): BatchOptions => ({ fence: i % 3 === 0, hold: i % 2 === 0, rangeAfter: i % 4 === 1 ? b('k/') : undefined });

      await runAll({
        sourceWriter: async (stopped) => {
          let mvStep = 0;
          let lease = 0;
          try {
            for (let i = 0; i < SOURCE_BATCHES && !stopped(); i++) {
              if (i === BEFORE_MIGRATION) {
                since = m.last + 1;
                // newest first: their superseded rows are still there (compaction is behind), so copies carry
                // them into the target and the source's compaction works on rows the drops delete
                const generations = Math.floor(mvStep / 3);
                ready.push(...Array.from({ length: generations }, (_, g) => generations - 1 - g));
              }
              if (i < BEFORE_MIGRATION && i % 3 === 2 && mvStep < 3 * GENERATIONS) {
                // the keys the migration moves: created, overwritten, some deleted (in generations of 8)
                const g = Math.floor(mvStep / 3);
                const phase = mvStep++ % 3;
                const ops: Op[] = Array.from({ length: 8 }, (_, j) =>
                  phase === 2 && j < 2 ? { key: b(`mv/${g}/${j}`), del: true } : { key: b(`mv/${g}/${j}`), value: b(`mv ${g}/${j} phase ${phase}`) },
                );
                await m.batch(src, ops, modes(i));
              } else if (i % 20 === 7) {
                // a lease granted with a key on it, revoked (with its key deleted) ten batches later
                lease++;
                const grant = { id: String(1000 + lease), ttl: 60, expiresAt: Date.now() + 60_000 };
                await m.batch(src, [{ key: b(`lease/${lease}`), value: b(`leased ${lease}`), lease: grant.id }], { ...modes(i), grant });
              } else if (i % 20 === 17 && lease > 0) {
                await m.batch(src, [{ key: b(`lease/${lease}`), del: true }], { ...modes(i), revoke: String(1000 + lease) });
              } else if (i % 25 === 11) {
                // a write that did not commit everywhere: taken back while compaction may walk the same revisions
                const n = ++reverts;
                const keys = Array.from({ length: 4 }, (_, j) => b(`rv/${n}/${j}`));
                const from = await m.batch(src, keys.map((key) => ({ key, value: b('to revert') })), modes(i));
                const to = await m.batch(src, [{ key: keys[0]!, value: b('to revert too') }, { key: keys[1]!, del: true }], modes(i + 1));
                await retryDeadlocks(m.deadlocks, 'revert', () => src.revert(from, to));
                for (const key of keys) m.newest.delete(id(key));
              } else {
                await m.batch(src, hotOps(`src ${i}`), modes(i));
              }
            }
          } finally {
            sourceDone = true;
          }
        },

        // the migration's mover: each generation's history copied into the target, then dropped from the
        // source. Copied once: a copy repeated after the target's compaction removed some of its rows brings
        // them back for good (a mover restarted between copy and drop does that; not a matter of isolation).
        mover: async (stopped) => {
          try {
            while (!stopped() && (since === 0 || ready.length > 0)) {
              const g = ready.shift();
              if (g === undefined) {
                await sleep(2);
                continue;
              }
              const prefix = b(`mv/${g}/`);
              const rows = await src.moves.history(prefix, prefixEnd(prefix), 500);
              await retryDeadlocks(m.deadlocks, 'migration copy', () => dst.moves.copyIn(rows));
              const keys = [...new Map(rows.map((r) => [id(r.key), r.key])).values()];
              const upTo = Math.max(...rows.map((r) => r.modRevision));
              if (keys.length > 0) await retryDeadlocks(m.deadlocks, 'migration drop', () => src.moves.dropOut(keys, upTo));
              for (let j = 0; j < 8; j++) {
                const key = b(`mv/${g}/${j}`);
                const e = m.newest.get(id(key));
                if (e) e.at = dst;
                moved.push(key);
              }
            }
          } finally {
            moverDone = true;
          }
        },

        // writes to the moved keys, now the target's
        targetWriter: async (stopped) => {
          try {
            for (let i = 0; i < TARGET_BATCHES && !stopped(); i++) {
              while (moved.length === 0 && !moverDone && !stopped()) await sleep(2);
              if (moved.length === 0) return;
              const keys = new Map<string, Buffer>();
              while (keys.size < Math.min(3, moved.length)) {
                const key = moved[pick(moved.length)]!;
                keys.set(id(key), key);
              }
              const ops: Op[] = [...keys.values()].map((key) => (pick(10) < 3 ? { key, del: true } : { key, value: b(`dst ${i} ${pick(1e6)}`) }));
              await m.batch(dst, ops, modes(i));
            }
          } finally {
            targetDone = true;
          }
        },

        compactSource: (stopped) =>
          compactLoop(
            src,
            m,
            // while keys move, nothing at or after the migration's start is compacted (as RoutedBackend.compact)
            () => {
              const committed = m.committed.get(src) ?? 0;
              return since === 0 ? committed - LAG : moverDone ? committed : Math.min(committed, since - 1);
            },
            () => stopped() || (sourceDone && moverDone),
            stats.src,
          ),
        // The target is compacted below the migration's start only (as RoutedBackend.compact), each pass by a
        // fresh backend as after a restart: a running one never walks again below where it completed, so it
        // would not meet the rows copied since.
        compactTarget: async (stopped) => {
          while (!stopped() && !moverDone) {
            if (since === 0) {
              await sleep(2);
              continue;
            }
            const fresh = await open(target);
            try {
              for (let done = false; !done && !stopped(); ) {
                const r = await retryDeadlocks(m.deadlocks, 'compaction of target', () => fresh.compact(since - 1, 25, Date.now() + 100));
                stats.dst.deleted += r.deleted;
                stats.dst.calls++;
                done = r.done;
              }
            } finally {
              await fresh.close();
            }
          }
        },
      });

      t.diagnostic(
        `moved ${moved.length} keys, ${reverts} reverts, compaction removed ${stats.src.deleted} rows from the source in ${stats.src.calls} calls and ` +
          `${stats.dst.deleted} from the target in ${stats.dst.calls}; deadlock victims retried: ${JSON.stringify(Object.fromEntries(m.deadlocks))}`,
      );
      assert.equal(moved.length, 8 * GENERATIONS, 'keys the mover moved');
      assert.ok(reverts >= 10, `only ${reverts} reverts ran`);
      assert.ok(stats.src.deleted > 0, 'compaction of the source removed rows during the run');

      assert.deepEqual(await stored(src), expectLive(m, src), 'every acknowledged write is in the source, at its revision');
      assert.deepEqual(await stored(dst), expectLive(m, dst), 'every moved key and write is in the target, at its revision');
      assert.equal(Number((await source.sql("SELECT COUNT(*) AS n FROM kv WHERE name LIKE 'mv/%' OR name LIKE 'rv/%'"))[0]!.n), 0, 'moved and reverted rows are gone from the source');
      assert.deepEqual((await src.leases()).map((l) => l.id), [...m.leases].sort());
      assert.deepEqual(
        (await src.leasedKeys()).map((k) => `${k.key} ${k.lease}`),
        m.newestIn(src).filter((r) => !r.deleted && r.lease !== '0').map((r) => `${r.key} ${r.lease}`).sort(),
      );
    } finally {
      await src.close();
      await dst.close();
    }

    // Fresh backends walk every row again (a running one resumes where it completed, which copies below that
    // point never see): after compacting to the newest revision only the newest row of each key is left.
    for (const [h, be] of [
      [source, src],
      [target, dst],
    ] as const) {
      const fresh = await open(h);
      try {
        await compactFully(fresh, m.last);
        assert.equal(await kvRows(h), rowsLeft(m.newestIn(be), m.last), `${h.name}: rows left after compacting to ${m.last}`);
        assert.deepEqual(await stored(fresh), expectLive(m, be), `${h.name}: compaction kept every newest row`);
      } finally {
        await fresh.close();
      }
    }
  });

  test('the store with leader fencing: concurrent puts, deletes, txns and leases while it compacts', async () => {
    const backends: ServerLogStore[] = [];
    const backend = async () => {
      const be = await open(storeDb);
      backends.push(be);
      return be;
    };
    // the election has its own connections, as `harikube serve` gives it; a standby registers itself meanwhile
    const leader = new LeaderElection({ backend: await backend(), identity: 'leader', leaseDurationMs: 60_000, renewIntervalMs: 20 });
    assert.equal(await leader.acquire(), true);
    let lost: string | undefined;
    leader.startRenewing((reason) => (lost = reason));
    const standbyBackend = await backend();
    const standby = new LeaderElection({ backend: standbyBackend, identity: 'standby', leaseDurationMs: 60_000, renewIntervalMs: 20 });
    const standingBy = new AbortController();
    const waiting = standby.acquire(standingBy.signal);
    const store = await Store.open({ backend: await backend(), fence: leader.fence, readCacheBytes: 0, compactBatchSize: 25 });

    const newest = new Map<string, { rev: number; value?: string }>();
    const record = (key: Buffer, rev: number, value?: string) => {
      const known = newest.get(id(key));
      if (!known || known.rev < rev) newest.set(id(key), { rev, value });
    };
    const HOT = Array.from({ length: 12 }, (_, i) => b(`s/${String(i).padStart(2, '0')}`));
    const CLIENTS = 4;
    const OPS = 150;
    const LEASES = 15;
    let writersLeft = CLIENTS + 1;
    let compactions = 0;
    let liveLease: string | undefined;
    try {
      await runAll({
        ...Object.fromEntries(
          Array.from({ length: CLIENTS }, (_, c) => [
            `client${c}`,
            async (stopped: () => boolean) => {
              const pick = random(745 + c);
              try {
                for (let i = 0; i < OPS && !stopped(); i++) {
                  const key = HOT[pick(HOT.length)]!;
                  const value = `c${c} ${i}`;
                  const kind = pick(10);
                  if (kind < 5) {
                    record(key, (await store.put({ key, value: b(value) })).header.revision, value);
                  } else if (kind < 7) {
                    const res = await store.deleteRange({ key });
                    if (res.deleted > 0) record(key, res.header.revision);
                  } else {
                    const other = HOT[(HOT.indexOf(key) + 1) % HOT.length]!;
                    const res = await store.txn({ success: [{ request_put: { key, value: b(value) } }, { request_put: { key: other, value: b(value) } }] });
                    assert.ok(res.succeeded);
                    record(key, res.header.revision, value);
                    record(other, res.header.revision, value);
                  }
                }
              } finally {
                writersLeft--;
              }
            },
          ]),
        ),
        leases: async (stopped) => {
          try {
            for (let n = 0; n < LEASES && !stopped(); n++) {
              const granted = await store.leaseGrant('0', 60);
              const keys = [b(`l/${n}/a`), b(`l/${n}/b`)];
              for (const key of keys) record(key, (await store.put({ key, value: b(`leased ${n}`), lease: granted.id })).header.revision, `leased ${n}`);
              await store.leaseKeepAlive(granted.id);
              if (n === LEASES - 1) {
                liveLease = granted.id; // the last one stays, with its keys
                break;
              }
              const revoked = await store.leaseRevoke(granted.id);
              for (const key of keys) record(key, revoked.revision);
            }
          } finally {
            writersLeft--;
          }
        },
        compactor: async (stopped) => {
          while (writersLeft > 0 && !stopped()) {
            const rev = store.revision - 5;
            if (rev > store.compactRevision) {
              await store.compact(rev, { physical: true });
              compactions++;
            } else {
              await sleep(2);
            }
          }
        },
      });
      assert.ok(compactions > 5, `only ${compactions} compactions ran alongside the writes`);
      const last = store.revision;
      if (last > store.compactRevision) await store.compact(last, { physical: true });

      const want: string[] = [];
      for (const [key, e] of [...newest].sort(([x], [y]) => Buffer.compare(Buffer.from(x, 'latin1'), Buffer.from(y, 'latin1')))) {
        if (e.value !== undefined) want.push(`${key} @${e.rev} = ${e.value}`);
      }
      const got = await store.range({ key: ALL.start, range_end: Buffer.from([0]) });
      assert.deepEqual(
        got.kvs.map((kv) => `${kv.key} @${kv.mod_revision} = ${kv.value}`),
        want,
        'every acknowledged write is there, at its revision',
      );
      const tombstonesAtLast = [...newest.values()].filter((e) => e.value === undefined && e.rev === last).length;
      assert.equal(await kvRows(storeDb), want.length + tombstonesAtLast, 'rows left after compacting to the newest revision');
      assert.deepEqual((await store.backend.leases()).map((l) => l.id), [liveLease]);
      assert.equal(lost, undefined, 'the leader kept its lease');
    } finally {
      standingBy.abort();
      const tookOver = await waiting;
      try {
        // release() does not stop a renewal already under way (it arms its timer again): deposing the leader
        // does, as the renewal then finds another holder and stops for good
        await inWriteTxn(standbyBackend, async (tx) => void (await tx.setMeta(META_LEADER, b('2/test-end'))));
        for (let i = 0; i < 1000 && lost === undefined; i++) await sleep(5);
      } finally {
        await store.close();
        for (const be of backends) await be.close();
      }
      assert.equal(tookOver, false, 'the standby never took over');
    }
  });
});

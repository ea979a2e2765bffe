/**
 * The SQLite write-ahead log stays bounded under lease churn while reads keep the read worker busy
 * (FIELD-LESSONS.md: a peer's SQLite reached 8 GB with a 20 GB WAL under Knative's lease churn, k3s #5033,
 * #8234). SQLite's own checkpoint after a commit cannot reset the WAL while a reader still uses older
 * frames, and the read worker runs long ranges, counts and watch catch-up beside the writer; without a
 * size limit the file never shrinks either (middleware/src/backends/sql/sqlite-checkpoint.ts).
 */
import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { inWriteTxn, type Backend, type KeyRow } from '../../middleware/src/backends/backend.js';
import { openBackend } from '../../middleware/src/backends/index.js';
import { configureLogging } from '../../middleware/src/log.js';
import { Store } from '../../middleware/src/mvcc/store.js';
import { b, prefixEnd } from '../support/bytes.js';
import { captureLogger, type LogRecord } from '../support/capture-logger.js';
import { waitUntil } from '../support/wait.js';

const MiB = 1024 * 1024;

/** What the WAL may reach during the churn: tens of MiB, whatever the volume written. */
const WAL_BOUND = 48 * MiB;
/** What it is back under after the churn, once a few more writes committed. */
const WAL_AFTER_BOUND = 16 * MiB;
/** The churn must write at least this, or staying under WAL_BOUND proves little (the test is then skipped). */
const MIN_VOLUME = 3 * WAL_BOUND;

/**
 * The churn stops at whichever comes first: the volume (as /proc/self/io counts it, where there is one) on
 * a machine fast enough, the time on a slow one.
 */
const MAX_VOLUME = 6 * WAL_BOUND;
const MAX_WRITES = 200_000;
const MAX_CHURN_MS = 35_000;

const PODS = 20_000;
const NODE_LEASES = 5_000;
/** Clients writing at once: group commit puts up to this many writes in one transaction. */
const WRITERS = 128;
/**
 * Read loops, back to back, by kind (see readKinds). Mostly counts: they keep the worker inside a snapshot
 * nearly all the time, as a busy API server's lists do; the others are the rest of what it sends the worker.
 */
const READERS = ['listPods', 'countPods', 'countPods', 'countPods', 'countPods', 'countPods', 'listLeases', 'catchUp'];

const pod = (i: number) => b(`/registry/pods/default/pod-${String(i).padStart(6, '0')}`);
const nodeLease = (i: number) => b(`/registry/leases/kube-node-lease/node-${String(i).padStart(5, '0')}`);
const PODS_START = b('/registry/pods/');
const PODS_END = prefixEnd('/registry/pods/');
const LEASES_START = b('/registry/leases/');
const LEASES_END = prefixEnd('/registry/leases/');

/** A Lease object's size, its renewTime changing each time; an Event's more than twice that. */
const leaseValue = (i: number, n: number) => Buffer.concat([b(`node-${i} renew ${n} `), Buffer.alloc(600, 0x6c)]);
const eventValue = (n: number) => Buffer.concat([b(`event ${n} `), Buffer.alloc(1500, 0x65)]);

const row = (key: Buffer, value: Buffer, rev: number): KeyRow => ({ key, value, modRevision: rev, sub: 0, createRevision: rev, prevRevision: 0, version: 1, lease: '0', deleted: false });

/** Bytes this process passed to write(2) and friends (Linux); undefined elsewhere. */
function bytesWritten(): number | undefined {
  try {
    const m = /^wchar: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function walSize(file: string): number {
  return existsSync(`${file}-wal`) ? statSync(`${file}-wal`).size : 0;
}

const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

/** The backend's own log records (JSON lines) while `fn` runs, at debug level. */
async function withBackendLog<T>(fn: (records: Record<string, unknown>[]) => Promise<T>): Promise<T> {
  const records: Record<string, unknown>[] = [];
  configureLogging({ level: 'debug', format: 'json', write: (line) => records.push(JSON.parse(line) as Record<string, unknown>) });
  try {
    return await fn(records);
  } finally {
    configureLogging({ level: 'info', format: 'plain', write: (line) => process.stderr.write(line + '\n') });
  }
}

describe('sqlite write-ahead log', () => {
  test('stays bounded under lease churn with compaction and the read worker busy, and shrinks after', { timeout: 120_000 }, async (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'hk-wal-'));
    const file = path.join(dir, 'state.db');
    const backend = openBackend(`sqlite://${file}`);
    let store: Store | undefined;
    try {
      await withBackendLog(async (backendLog) => {
        // pods to list and count (each full read takes the worker tens of milliseconds), created 1,000 per
        // transaction as kube-apiserver would: no large WAL before the churn
        await backend.open();
        const podValue = Buffer.alloc(1024, 0x70);
        for (let from = 0; from < PODS; from += 1000) {
          await inWriteTxn(backend, async (tx) => tx.insert(Array.from({ length: 1000 }, (_, j) => row(pod(from + j), podValue, from + j + 1))));
        }
        const logs: LogRecord[] = [];
        const log = captureLogger(logs);
        store = await Store.open({ backend, logger: log });
        const s = store;

        const started = Date.now();
        const wcharBefore = bytesWritten();
        let writes = 0;
        let stop = false;
        /** Bytes written since the churn began, as of the last sample. */
        let volume = 0;
        const more = () => !stop && writes < MAX_WRITES && volume < MAX_VOLUME && Date.now() - started < MAX_CHURN_MS;
        /** Per node lease, the newest acknowledged write: [revision, value]. */
        const newest = new Map<number, [number, Buffer]>();
        const renew = async (node: number, n: number) => {
          const value = leaseValue(node, n);
          const rev = Number((await s.put({ key: nodeLease(node), value })).header.revision);
          if ((newest.get(node)?.[0] ?? 0) < rev) newest.set(node, [rev, value]);
        };

        // Events hang on a lease that lives two seconds (etcd's shortest): the lessor deletes them as it expires
        let eventLease = (await s.leaseGrant('0', 2)).id;
        // compaction as `serve`'s automatic one does it (1,000 revisions kept), every second instead of every 5
        // minutes; each waits for its rows to be removed, since removals of two targets at once keep restarting
        // each other's walk (mvcc/compaction.ts) and serve's, minutes apart, do not overlap
        const compaction = (async () => {
          while (more()) {
            await new Promise((r) => setTimeout(r, 1000));
            const target = s.revision - 1000;
            if (target > s.compactRevision) await s.compact(target, { physical: true });
          }
        })();
        const leaseRotation = (async () => {
          while (more()) {
            await new Promise((r) => setTimeout(r, 500));
            eventLease = (await s.leaseGrant('0', 2)).id;
          }
        })();

        const writer = async (w: number) => {
          for (let n = w; more(); n += WRITERS) {
            writes++;
            if (n % 4 === 3) await s.put({ key: b(`/registry/events/default/ev-${n}`), value: eventValue(n), lease: eventLease });
            // nodes renew in no particular key order
            else await renew((n * 7919) % NODE_LEASES, n);
          }
        };

        // what kube-apiserver sends the read worker: full lists, counts and watch catch-up
        const readKinds: Record<string, (rev: number) => Promise<unknown>> = {
          listPods: (rev) => backend.range({ start: PODS_START, end: PODS_END, revision: rev, limit: 0 }),
          countPods: (rev) => backend.count(PODS_START, PODS_END, rev),
          listLeases: (rev) => backend.range({ start: LEASES_START, end: LEASES_END, revision: rev, limit: 0 }),
          catchUp: (rev) => backend.changes(Math.max(s.compactRevision + 1, rev - 5000), rev, 1000),
        };
        let reads = 0;
        const reader = async (kind: string) => {
          while (more()) {
            reads++;
            await readKinds[kind]!(s.revision);
          }
        };

        let maxWal = 0;
        const sampler = setInterval(() => {
          maxWal = Math.max(maxWal, walSize(file));
          if (wcharBefore !== undefined) volume = bytesWritten()! - wcharBefore;
        }, 20);
        try {
          await Promise.all([...Array.from({ length: WRITERS }, (_, w) => writer(w)), ...READERS.map(reader), leaseRotation, compaction]);
        } finally {
          stop = true;
          clearInterval(sampler);
        }
        maxWal = Math.max(maxWal, walSize(file));
        const churnMs = Date.now() - started;
        const written = wcharBefore === undefined ? undefined : bytesWritten()! - wcharBefore;
        const endOfChurn = walSize(file);

        // the churn is over; node leases are still renewed now and then
        for (let i = 0; i < 5; i++) await renew(i, -1);
        const after = walSize(file);

        const checkpoints = backendLog.filter((r) => r.msg === 'checkpointed the write-ahead log');
        t.diagnostic(
          `${writes} writes and ${reads} reads in ${churnMs} ms, ${written === undefined ? 'bytes written unknown' : `${mib(written)} written`}, ` +
            `compacted to ${s.compactRevision} of ${s.revision}; WAL at most ${mib(maxWal)}, ${mib(endOfChurn)} at the end of the churn, ` +
            `${mib(after)} after 5 more writes; ${checkpoints.length} checkpoints of the backend's own` +
            (checkpoints.length > 0 ? `, the longest ${Math.max(...checkpoints.map((r) => Number(r.ms)))} ms` : ''),
        );
        assert.ok(s.compactRevision > 0, 'compaction ran during the churn');
        assert.ok(maxWal <= WAL_BOUND, `the WAL reached ${mib(maxWal)} during the churn, above ${mib(WAL_BOUND)}`);
        assert.ok(after <= WAL_AFTER_BOUND, `the WAL is ${mib(after)} after the churn, above ${mib(WAL_AFTER_BOUND)}: it did not shrink`);
        assert.deepEqual(
          logs.filter((r) => r.level === 'warn' || r.level === 'error').map((r) => `${r.msg}: ${String(r.fields.error)}`),
          [],
          'the store warned of nothing',
        );

        // nothing acknowledged was lost or reordered by the checkpoints: each node lease holds its newest write,
        // before and after a restart
        const check = async (read: (key: Buffer) => Promise<{ value: Buffer; rev: number } | undefined>, when: string) => {
          for (const [node, [rev, value]] of newest) {
            const got = await read(nodeLease(node));
            assert.ok(got && got.rev === rev && got.value.equals(value), `node lease ${node} ${when}: expected revision ${rev}, found ${got?.rev}`);
          }
        };
        await check(async (key) => {
          const kv = (await s.range({ key })).kvs[0];
          return kv && { value: kv.value, rev: Number(kv.mod_revision) };
        }, 'after the churn');
        await s.close();
        store = undefined;
        const again = openBackend(`sqlite://${file}`);
        await again.open();
        try {
          await check(async (key) => {
            const [r] = await again.range({ start: key, revision: await again.maxRevision(), limit: 0 });
            return r && { value: r.value, rev: r.modRevision };
          }, 'after reopening the file');
        } finally {
          await again.close();
        }
        // the bounds held, but on a machine this slow the churn did not write enough for that to mean much
        if (written !== undefined && written < MIN_VOLUME) t.skip(`inconclusive: the churn wrote only ${mib(written)} in ${churnMs} ms, less than ${mib(MIN_VOLUME)} (a slow or busy machine)`);
      });
    } finally {
      await ((store as Store | undefined)?.close() ?? backend.close());
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the writer keeps synchronous=FULL and limits its WAL', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'hk-wal-'));
    const backend = openBackend(`sqlite://${path.join(dir, 'state.db')}`);
    try {
      await backend.open();
      const writer = (backend as unknown as { writer: { db: Database.Database } }).writer.db;
      assert.equal(writer.pragma('synchronous', { simple: true }), 2, 'FULL: an acknowledged write survives power loss');
      assert.ok(Number(writer.pragma('journal_size_limit', { simple: true })) > 0, 'a reset WAL is cut back');
      assert.ok(Number(writer.pragma('wal_autocheckpoint', { simple: true })) > 0, 'SQLite checkpoints after commits');
    } finally {
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('another process holding a snapshot: the checkpoint gives up without waiting, warns, and succeeds once it is gone', { timeout: 60_000 }, async (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'hk-wal-'));
    const file = path.join(dir, 'state.db');
    const backend: Backend = openBackend(`sqlite://${file}`);
    let other: Database.Database | undefined;
    try {
      await withBackendLog(async (backendLog) => {
        await backend.open();
        let rev = 0;
        const write = (n: number, size: number) => inWriteTxn(backend, async (tx) => tx.insert(Array.from({ length: n }, () => ++rev).map((r) => row(b(`/big/${r}`), Buffer.alloc(size, r % 256), r))));
        await write(1, 10);
        // a sqlite3 shell in the middle of a read
        other = new Database(file, { readonly: true });
        other.prepare('BEGIN').run();
        other.prepare('SELECT count(*) FROM kv').get();
        // one transaction takes the WAL past the backend's threshold; it cannot be reset under the reader
        const started = performance.now();
        await write(40, MiB);
        await write(1, 10);
        const warning = await waitUntil('the warning that the checkpoint could not finish', () => backendLog.find((r) => r.level === 'warn'));
        t.diagnostic(`${mib(walSize(file))} of WAL under the reader; the writes and the failed checkpoint took ${Math.round(performance.now() - started)} ms`);
        assert.match(String(warning.msg), /another process is reading or writing the database/);
        assert.equal(warning.file, `${file}-wal`, 'the warning names the file');
        assert.ok(walSize(file) > 40 * MiB, 'the WAL is kept while a reader needs it');
        const writer = (backend as unknown as { writer: { db: Database.Database } }).writer.db;
        assert.equal(writer.pragma('busy_timeout', { simple: true }), 5000, 'the busy timeout is restored after the checkpoint');

        other.prepare('COMMIT').run();
        // later commits try again (once a second) and truncate the WAL
        await waitUntil('the WAL truncated once the reader is gone', async () => (await write(1, 10), walSize(file) <= WAL_AFTER_BOUND || undefined), { timeoutMs: 20_000, intervalMs: 200 });
        const rows = await backend.range({ start: b('/big/'), end: prefixEnd('/big/'), revision: rev, limit: 0 });
        assert.equal(rows.length, rev, 'every row is there');
      });
    } finally {
      other?.close();
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** The SQLite backend: the conformance suite plus what only SQLite has (files, WAL, `:memory:`). */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { inWriteTxn, type Backend, type KeyRow } from '../../middleware/src/backends/backend.js';
import { BackendUnavailableError, openBackend } from '../../middleware/src/backends/index.js';
import { unpackRows } from '../../middleware/src/backends/sql/sqlite-pages.js';
import { backendConformance } from './conformance/suite.js';
import { sqliteStore } from './support/stores.js';

backendConformance('sqlite', false);

describe('sqlite backend files', () => {
  test('open creates missing parent directories and a WAL database with synchronous=FULL', async () => {
    const store = await sqliteStore();
    try {
      assert.ok(!existsSync(store.name));
      const be = store.backend();
      await be.open();
      try {
        assert.ok(existsSync(store.name), `${store.name} exists`);
        const [mode] = await store.sql('PRAGMA journal_mode');
        assert.equal(mode?.journal_mode, 'wal');
      } finally {
        await be.close();
      }
    } finally {
      await store.dispose();
    }
  });

  test('sqlite://:memory: works and leaves nothing behind on close', async () => {
    const before = new Set(readdirSync(os.tmpdir()).filter((n) => n.startsWith('harikube-memory-')));
    const be = openBackend('sqlite://:memory:');
    await be.open();
    await inWriteTxn(be, async (tx) =>
      tx.insert([{ key: Buffer.from('k'), value: Buffer.from('v'), modRevision: 1, sub: 0, createRevision: 1, prevRevision: 0, version: 1, lease: '0', deleted: false }]),
    );
    assert.equal((await be.range({ start: Buffer.from('k'), revision: 1, limit: 0 })).length, 1);
    await be.close();
    const after = readdirSync(os.tmpdir()).filter((n) => n.startsWith('harikube-memory-') && !before.has(n));
    assert.deepEqual(after, []);
  });

  test('a path that cannot be created fails as unavailable naming the file', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'hk-backend-'));
    try {
      // A file where a directory should be.
      writeFileSync(path.join(dir, 'plain-file'), '');
      const be = openBackend(`sqlite://${path.join(dir, 'plain-file', 'sub', 'state.db')}`);
      await assert.rejects(be.open(), (err) => err instanceof BackendUnavailableError && /plain-file/.test(err.message) && /writable/.test(err.message));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('sqlite packed range rows', () => {
  const meta = (rows: [string, string, number][]) => JSON.stringify(rows.map(([k, v, rev]) => [Buffer.byteLength(k), Buffer.byteLength(v), rev, 0, rev, 0, 1, '9223372036854775807', 0]));

  test('rows come back in key order even if SQLite aggregated them in another', () => {
    const rows: [string, string, number][] = [
      ['b', 'vb', 2],
      ['a', '', 1],
      ['c', 'value c', 3],
    ];
    const out: KeyRow[] = [];
    const n = unpackRows({ bytes: Buffer.from(rows.map(([k, v]) => k + v).join('')), meta: meta(rows) }, out);
    assert.equal(n, 3);
    assert.deepEqual(
      out.map((r) => [r.key.toString(), r.value.toString(), r.modRevision, r.lease]),
      [
        ['a', '', 1, '9223372036854775807'],
        ['b', 'vb', 2, '9223372036854775807'],
        ['c', 'value c', 3, '9223372036854775807'],
      ],
    );
  });

  test('an empty chunk and a chunk whose lengths do not add up', () => {
    const out: KeyRow[] = [];
    assert.equal(unpackRows({ bytes: null, meta: '[]' }, out), 0);
    assert.throws(() => unpackRows({ bytes: Buffer.from('abc'), meta: meta([['a', 'b', 1]]) }, out), /3 bytes for rows of 2 bytes/);
  });
});

describe('sqlite read worker', () => {
  const KEYS = 20_000;
  const key = (i: number) => Buffer.from(`/registry/pods/default/${String(i).padStart(6, '0')}`);
  const ALL = { start: Buffer.from('/registry/pods/'), end: Buffer.from('/registry/pods0'), limit: 0 };

  async function loaded(): Promise<{ be: Backend; dispose: () => Promise<void> }> {
    const store = await sqliteStore();
    const be = store.backend();
    await be.open();
    const value = Buffer.alloc(512, 7);
    await inWriteTxn(be, async (tx) =>
      tx.insert(Array.from({ length: KEYS }, (_, i) => ({ key: key(i), value, modRevision: i + 1, sub: 0, createRevision: i + 1, prevRevision: 0, version: 1, lease: '0', deleted: false }))),
    );
    return { be, dispose: async () => (await be.close(), await store.dispose()) };
  }

  test('an unlimited range runs beside the event loop: a single-key read issued after it answers first', async () => {
    const { be, dispose } = await loaded();
    try {
      const order: string[] = [];
      const big = be.range({ ...ALL, revision: KEYS }).then((rows) => (order.push('range'), rows));
      const one = be.range({ start: key(7), revision: KEYS, limit: 0 }).then((rows) => (order.push('get'), rows));
      const [rows, [single]] = await Promise.all([big, one]);
      assert.deepEqual(order, ['get', 'range'], 'on the main thread the range would have finished before the get began');
      assert.equal(rows.length, KEYS);
      assert.deepEqual(rows[KEYS - 1]!.key, key(KEYS - 1));
      assert.ok(rows.every((r, i) => r.key.equals(key(i))), 'every key, in order');
      assert.deepEqual(single!.key, key(7));
      assert.equal(await be.count(ALL.start, ALL.end, KEYS), KEYS);
      assert.equal(await be.count(ALL.start, ALL.end, 100), 100, 'a count at an older revision');
    } finally {
      await dispose();
    }
  });

  test('a worker that dies fails its reads as unavailable and the next read starts a new one', async () => {
    const { be, dispose } = await loaded();
    try {
      const failed = assert.rejects(be.range({ ...ALL, revision: KEYS }), (err) => err instanceof BackendUnavailableError && /read worker stopped/.test(err.message));
      await new Promise((r) => setImmediate(r)); // the read is on the worker now (20,000 rows take it a while)
      const thread = (be as unknown as { readThread: { current?: { worker: { terminate(): Promise<number> } } } }).readThread;
      await thread.current!.worker.terminate();
      await failed;
      assert.equal((await be.range({ ...ALL, revision: KEYS })).length, KEYS, 'a new worker answers');
    } finally {
      await dispose();
    }
  });

  test('closing the backend fails a read still running on the worker, and close finishes', async () => {
    const { be, dispose } = await loaded();
    try {
      const failed = assert.rejects(be.range({ ...ALL, revision: KEYS }), (err) => err instanceof BackendUnavailableError && /closed/.test(err.message));
      await be.close();
      await failed;
      await assert.rejects(be.range({ ...ALL, revision: KEYS }), /not open/);
    } finally {
      await dispose(); // closing twice is harmless
    }
  });
});

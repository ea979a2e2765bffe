/**
 * Database servers go away: connections killed by an administrator (what a restart or failover looks like
 * to a client), servers not listening. Failures must be BackendUnavailableError naming the database with
 * credentials redacted, and the backend must recover by itself once the server is back.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inWriteTxn, BackendUnavailableError, type Backend } from '../../../middleware/src/backends/backend.js';
import { openBackend } from '../../../middleware/src/backends/index.js';
import { freePort } from '../../support/env.js';
import type { ModelLog } from '../support/model.js';
import type { Suite } from './suite.js';

const b = (s: string) => Buffer.from(s, 'utf8');

/** Runs `call`; it may fail, but only as unavailable naming the database. */
async function succeedsOrUnavailable(what: string, dbName: string, call: () => Promise<unknown>): Promise<'ok' | 'unavailable'> {
  try {
    await call();
    return 'ok';
  } catch (err) {
    assert.ok(err instanceof BackendUnavailableError, `${what} failed with ${String(err)} instead of BackendUnavailableError`);
    assert.ok(err.message.includes(dbName), `${what}: "${err.message}" names the database ${dbName}`);
    return 'unavailable';
  }
}

async function warmUp(be: Backend, log: ModelLog): Promise<void> {
  await log.commit({ put: 'r/1' }, { put: 'r/2' });
  // Several concurrent reads, so the pool holds more than one idle connection to be killed.
  await Promise.all(Array.from({ length: 4 }, () => be.range({ start: b('r/'), end: b('r0'), revision: log.revision, limit: 0 })));
}

export function reconnectTests(suite: Suite): void {
  test('after its connections are killed the backend recovers by itself, write connection included', () =>
    suite.fresh(async (be, log) => {
      await warmUp(be, log);
      const store = suite.store();
      assert.ok((await store.killConnections()) >= 2, 'the pool and the write connection were killed');

      await succeedsOrUnavailable('the first read after the kill', store.name, () => be.range({ start: b('r/1'), revision: log.revision, limit: 0 }));
      const write = await succeedsOrUnavailable('the first write after the kill', store.name, () => log.commit({ put: 'r/3' }));
      if (write === 'unavailable') log.revision = await be.maxRevision();

      // From now on everything works again.
      await log.commit({ put: 'r/4' });
      assert.deepEqual(
        (await be.range({ start: b('r/'), end: b('r0'), revision: log.revision, limit: 0 })).map((r) => r.key.toString()),
        write === 'ok' ? ['r/1', 'r/2', 'r/3', 'r/4'] : ['r/1', 'r/2', 'r/4'],
      );
      assert.equal(await be.count(b('r/'), b('r0'), log.revision), write === 'ok' ? 4 : 3);
      assert.equal(await be.maxRevision(), log.revision);
    }));

  test('a write whose connection is killed mid-transaction fails as unavailable and commits nothing', () =>
    suite.fresh(async (be, log) => {
      await warmUp(be, log);
      const store = suite.store();
      let inserted!: () => void;
      const started = new Promise<void>((resolve) => (inserted = resolve));
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const rev = log.revision + 1;
      const write = inWriteTxn(be, async (tx) => {
        await tx.insert([{ key: b('r/mid'), value: b('x'), modRevision: rev, sub: 0, createRevision: rev, prevRevision: 0, version: 1, lease: '0', deleted: false }]);
        inserted();
        await gate;
        await tx.insert([{ key: b('r/mid2'), value: b('x'), modRevision: rev, sub: 1, createRevision: rev, prevRevision: 0, version: 1, lease: '0', deleted: false }]);
      });
      await started;
      await store.killConnections();
      release();
      await assert.rejects(write, (err) => err instanceof BackendUnavailableError && err.message.includes(store.name));
      await succeedsOrUnavailable('the first read after the kill', store.name, () => be.maxRevision());
      assert.equal(await be.maxRevision(), log.revision, 'nothing of the killed transaction committed');
      await log.commit({ put: 'r/after' });
      assert.equal((await be.range({ start: b('r/after'), revision: log.revision, limit: 0 })).length, 1);
    }));

  test('opening against a port nobody listens on fails promptly as unavailable, naming host:port without the password', { timeout: 15_000 }, async () => {
    const port = await freePort();
    const endpoint =
      suite.kind === 'postgres' ? `postgres://postgres:sekret@127.0.0.1:${port}/hk_unreachable` : `mysql://root:sekret@tcp(127.0.0.1:${port})/hk_unreachable`;
    const be = openBackend(endpoint);
    assert.ok(!be.description.includes('sekret'));
    await assert.rejects(be.open(), (err) => {
      assert.ok(err instanceof BackendUnavailableError, `got ${String(err)}`);
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
      assert.match(err.message, /check that/);
      assert.ok(!err.message.includes('sekret'), err.message);
      return true;
    });
    await be.close();
  });
}

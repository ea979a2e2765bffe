/** Opening, closing, reopening: persistence, the schema version guard, size reporting. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inWriteTxn, BackendUnavailableError } from '../../../middleware/src/backends/backend.js';
import type { Suite } from './suite.js';

const b = (s: string) => Buffer.from(s, 'utf8');

export function lifecycleTests(suite: Suite): void {
  test('a reopened backend finds rows, meta and leases, and keeps writing', async () => {
    await suite.fresh(async (be, log) => {
      await log.commit({ put: 'p/1', lease: '77' }, { put: 'p/2' });
      await log.commit({ del: 'p/2' });
      await inWriteTxn(be, async (tx) => {
        await tx.setMeta('compact_revision', b('1'));
        await tx.putLease({ id: '77', ttl: 30, expiresAt: 1_900_000_000_000 });
      });
    });
    const again = suite.store().backend();
    await again.open();
    try {
      assert.equal(await again.maxRevision(), 2);
      assert.deepEqual((await again.range({ start: b('p/'), end: b('p0'), revision: 2, limit: 0 })).map((r) => r.key.toString()), ['p/1']);
      assert.equal(await again.count(b('p/'), b('p0'), 1), 2);
      assert.deepEqual(await again.getMeta('compact_revision'), b('1'));
      assert.deepEqual(await again.getMeta('schema_version'), b('1'));
      assert.deepEqual(await again.leases(), [{ id: '77', ttl: 30, expiresAt: 1_900_000_000_000 }]);
      await inWriteTxn(again, async (tx) => {
        const prev = await tx.latest(b('p/1'));
        await tx.insert([{ ...prev!, value: b('next'), modRevision: 3, sub: 0, prevRevision: prev!.modRevision, version: 2 }]);
      });
      assert.equal(await again.maxRevision(), 3);
    } finally {
      await again.close();
    }
  });

  test('a database with a newer schema version is refused with what to do', async () => {
    await suite.fresh(async (be) => {
      await inWriteTxn(be, async (tx) => tx.setMeta('schema_version', b('999')));
    });
    const again = suite.store().backend();
    await assert.rejects(
      again.open(),
      (err) =>
        err instanceof Error &&
        !(err instanceof BackendUnavailableError) &&
        /schema version 999/.test(err.message) &&
        /knows versions up to 1/.test(err.message) &&
        err.message.includes(again.description),
    );
    await again.close();
  });

  test('sizeBytes reports the space the data takes', () =>
    suite.fresh(async (be, log) => {
      const empty = await be.sizeBytes();
      assert.ok(Number.isInteger(empty) && empty > 0, `size of an empty store is positive (${empty})`);
      await log.commit({ put: 'x', value: Buffer.alloc(512 * 1024, 7) });
      assert.ok((await be.sizeBytes()) > 0);
    }));

  test('calls on a backend that is not open fail with a clear error', async () => {
    await suite.store().reset();
    const be = suite.store().backend();
    await assert.rejects(be.maxRevision(), /not open/);
    await be.open();
    await be.close();
    await assert.rejects(be.range({ start: b('a'), revision: 1, limit: 0 }), /not open/);
  });
}

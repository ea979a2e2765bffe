/** The MySQL/MariaDB backend: the conformance suite (with reconnection) on a real server, plus its server limits. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { inWriteTxn, BackendUnavailableError } from '../../middleware/src/backends/backend.js';
import { skipUnless } from '../support/env.js';
import { backendConformance } from './conformance/suite.js';
import { mysqlStore } from './support/stores.js';

const skip = await skipUnless('mysql');

backendConformance('mysql', skip);

describe('mysql backend database', { skip }, () => {
  test('open creates the database with binary key columns', async () => {
    const store = await mysqlStore();
    try {
      const be = store.backend();
      await be.open();
      await be.close();
      const cols = await store.sql(
        "SELECT column_name AS c, data_type AS t, collation_name AS coll FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'kv' AND column_name IN ('name', 'value') ORDER BY column_name",
      );
      assert.deepEqual(
        cols.map((c) => [c.c, c.t, c.coll]),
        [
          ['name', 'varbinary', null],
          ['value', 'longblob', null],
        ],
      );
    } finally {
      await store.dispose();
    }
  });

  test('a row larger than max_allowed_packet is refused with an error saying what to raise', async (t) => {
    const store = await mysqlStore();
    try {
      const be = store.backend();
      await be.open();
      try {
        const [packet] = await store.sql('SELECT @@max_allowed_packet AS m');
        const max = Number(packet!.m);
        if (max > 64 * 1024 * 1024) return t.skip(`max_allowed_packet is ${max}: too big to exceed in a test`);
        const value = Buffer.alloc(max, 1);
        await assert.rejects(
          inWriteTxn(be, async (tx) =>
            tx.insert([{ key: Buffer.from('huge'), value, modRevision: 1, sub: 0, createRevision: 1, prevRevision: 0, version: 1, lease: '0', deleted: false }]),
          ),
          (err) => err instanceof Error && !(err instanceof BackendUnavailableError) && /raise max_allowed_packet/.test(err.message),
        );
        assert.equal(await be.maxRevision(), 0);
      } finally {
        await be.close();
      }
    } finally {
      await store.dispose();
    }
  });
});

/** The PostgreSQL backend: the conformance suite (with reconnection) on a real server, plus database creation. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { skipUnless } from '../support/env.js';
import { backendConformance } from './conformance/suite.js';
import { postgresStore } from './support/stores.js';

const skip = await skipUnless('postgres');

backendConformance('postgres', skip);

describe('postgres backend database', { skip }, () => {
  test('open creates the database when it is missing', async () => {
    const store = await postgresStore();
    try {
      const be = store.backend();
      await be.open();
      await be.close();
      const tables = await store.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename");
      assert.deepEqual(tables.map((t) => t.tablename), ['kv', 'leases', 'meta']);
      const keyType = await store.sql("SELECT data_type FROM information_schema.columns WHERE table_name = 'kv' AND column_name = 'name'");
      assert.equal(keyType[0]?.data_type, 'bytea');
    } finally {
      await store.dispose();
    }
  });
});

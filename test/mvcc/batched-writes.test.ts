/**
 * Group commit through `WriteTxn.prefetch` and `holdWrites` on PostgreSQL and MariaDB (write-queue.ts): the requests of one
 * batch read their keys from the batch's single read and the rows held before them, and a request whose row
 * the database refuses at commit still fails alone. The refusal is real: a CHECK constraint on the scratch
 * database's `kv` table rejects one key, which only the database knows.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { inWriteTxn } from '../../middleware/src/backends/backend.js';
import { openBackend } from '../../middleware/src/backends/index.js';
import type { SqlWriteTxn } from '../../middleware/src/backends/sql/movable-sql.js';
import { Store } from '../../middleware/src/mvcc/store.js';
import { skipUnless } from '../support/env.js';
import { createScratchStore, type ScratchStore } from '../support/scratch-store.js';

const b = (s: string) => Buffer.from(s);
const POISON = '/batch/refused';
const hex = Buffer.from(POISON).toString('hex');
/** The constraint, per database (DDL takes no parameters; the key is a hex literal). */
const CHECK = {
  postgres: `ALTER TABLE kv ADD CONSTRAINT test_refused CHECK (name <> '\\x${hex}'::bytea)`,
  mysql: `ALTER TABLE kv ADD CONSTRAINT test_refused CHECK (name <> x'${hex}')`,
};

for (const kind of ['postgres', 'mysql'] as const) {
  const skip = await skipUnless(kind);
  describe(`batched group commit on ${kind}`, { skip }, () => {
    let scratch: ScratchStore;
    let store: Store;

    before(async () => {
      scratch = await createScratchStore(kind);
      const backend = openBackend(scratch.endpoint);
      store = await Store.open({ backend });
      await inWriteTxn(backend as unknown as { begin(): Promise<SqlWriteTxn> }, async (tx) => void (await tx.execute(CHECK[kind], [])));
    });

    after(async () => {
      await store?.close();
      await scratch?.dispose();
    });

    it('puts and a CAS Txn of one key in one batch see each other in order', async () => {
      const key = b('/batch/same');
      const base = Number((await store.range({ key: b('/') })).header.revision);
      // submitted together, so they form one batch: each reads the row the one before it wrote
      const results = await Promise.all([
        ...Array.from({ length: 6 }, (_, i) => store.put({ key, value: b(`v${i}`), prev_kv: true })),
        store.txn({
          compare: [{ key, target: 'Version', result: 'Equal', version: 6 }],
          success: [{ request_put: { key, value: b('cas') } }],
          failure: [],
        }),
      ]);
      assert.deepEqual(results.slice(0, 6).map((r) => Number(r.header.revision)), [1, 2, 3, 4, 5, 6].map((i) => base + i));
      assert.deepEqual(results.slice(1, 6).map((r) => ('prev_kv' in r ? r.prev_kv?.value.toString() : undefined)), ['v0', 'v1', 'v2', 'v3', 'v4']);
      assert.equal((results[6] as { succeeded: boolean }).succeeded, true);
      const kv = (await store.range({ key })).kvs[0]!;
      assert.equal(kv.value.toString(), 'cas');
      assert.equal(Number(kv.version), 7);
      assert.equal(Number(kv.create_revision), base + 1);
    });

    it('a row the database refuses at commit fails its request alone; the rest of the batch commits without a gap', async () => {
      const base = Number((await store.range({ key: b('/') })).header.revision);
      const keys = ['/batch/a', '/batch/b', POISON, '/batch/c', '/batch/d'];
      const settled = await Promise.allSettled(keys.map((k) => store.put({ key: b(k), value: b(k) })));
      const refused = settled[2]!;
      assert.equal(refused.status, 'rejected');
      assert.match(String((refused as PromiseRejectedResult).reason?.message), /test_refused|constraint/i);
      const revisions = settled.filter((s) => s.status === 'fulfilled').map((s) => Number((s as PromiseFulfilledResult<{ header: { revision: number } }>).value.header.revision));
      assert.deepEqual(revisions, [base + 1, base + 2, base + 3, base + 4]);
      for (const k of keys) assert.equal((await store.range({ key: b(k) })).kvs.length, k === POISON ? 0 : 1, k);
      // the next write is exactly one above: the refused request consumed no revision
      assert.equal(Number((await store.put({ key: b('/batch/e'), value: b('e') })).header.revision), base + 5);
    });
  });
}

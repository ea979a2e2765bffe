/**
 * The one backend conformance suite, run against every dialect: `backendConformance('postgres', skip)`
 * registers every section below on a store of that kind (a unique database, dropped afterwards).
 */
import { after, before, describe } from 'node:test';
import type { Backend } from '../../../middleware/src/backends/backend.js';
import { ModelLog } from '../support/model.js';
import { STORES, type StoreHarness, type StoreKind } from '../support/stores.js';
import { batchWriteTests } from './batch-writes.js';
import { bytewiseTests } from './bytewise.js';
import { compactionTests } from './compaction.js';
import { concurrentGetTests } from './concurrent-gets.js';
import { lifecycleTests } from './lifecycle.js';
import { metaLeaseTests } from './meta-leases.js';
import { readTests } from './reads.js';
import { reconnectTests } from './reconnect.js';
import { writeTests } from './writes.js';

export interface Suite {
  readonly kind: StoreKind;
  store(): StoreHarness;
  /** Opens a backend on an emptied store, runs `fn` with it and a reference log, closes it. */
  fresh<T>(fn: (b: Backend, log: ModelLog) => Promise<T>): Promise<T>;
}

export function backendConformance(kind: StoreKind, skip: string | false): void {
  describe(`${kind} backend conformance`, { skip }, () => {
    let store: StoreHarness | undefined;
    before(async () => {
      store = await STORES[kind]();
    });
    after(async () => {
      await store?.dispose();
    });
    const suite: Suite = {
      kind,
      store: () => {
        if (!store) throw new Error('store not set up');
        return store;
      },
      async fresh(fn) {
        const s = suite.store();
        await s.reset();
        const b = s.backend();
        await b.open();
        try {
          return await fn(b, new ModelLog(b));
        } finally {
          await b.close();
        }
      },
    };
    readTests(suite);
    concurrentGetTests(suite);
    bytewiseTests(suite);
    writeTests(suite);
    batchWriteTests(suite);
    metaLeaseTests(suite);
    compactionTests(suite);
    lifecycleTests(suite);
    if (kind !== 'sqlite') reconnectTests(suite);
  });
}

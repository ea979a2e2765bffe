/**
 * Compare-and-swap under contention with kube-apiserver's update Txn: no lost update, no two winners at
 * one revision. Bounded by attempts and by time.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { b, rev, text } from '../support/bytes.js';
import { contractSuite } from '../support/contract.js';
import { kubeCreate, kubeUpdate } from '../support/kube-txn.js';
import { withTimeout } from '../support/wait.js';

const CLIENTS = 8;
const INCREMENTS_EACH = 25;
/** Far above what contention needs; reaching it means compares are being decided wrongly. */
const MAX_ATTEMPTS_EACH = 2_000;

await contractSuite('concurrent compare-and-swap', (t) => {
  it(`${CLIENTS} clients × ${INCREMENTS_EACH} increments via the update txn lose nothing`, async () => {
    const key = b(`${t.prefix('cas')}counter`);
    const created = await t.client.txn(kubeCreate(key, b('0')));
    assert.equal(created.succeeded, true);

    const winners: bigint[] = [];
    const worker = async () => {
      const client = t.newClient();
      let current = (await client.range({ key })).kvs[0]!;
      let done = 0;
      for (let attempt = 0; done < INCREMENTS_EACH; attempt++) {
        assert.ok(attempt < MAX_ATTEMPTS_EACH, 'too many failed compares');
        const next = String(Number(text(current.value)) + 1);
        const res = await client.txn(kubeUpdate(key, current.mod_revision, b(next)));
        if (res.succeeded) {
          winners.push(rev(res));
          done++;
          current = { ...current, value: b(next), mod_revision: res.header.revision };
        } else {
          // The failure branch hands back the current object, as kube-apiserver uses it.
          current = res.responses[0]!.response_range!.kvs[0]!;
        }
      }
    };
    await withTimeout(Promise.all(Array.from({ length: CLIENTS }, worker)), 120_000, 'the CAS workers');

    const total = CLIENTS * INCREMENTS_EACH;
    const final = (await t.client.range({ key })).kvs[0]!;
    assert.equal(text(final.value), String(total));
    assert.equal(final.version, String(total + 1));
    assert.equal(new Set(winners.map(String)).size, total, 'every successful update has its own revision');
    assert.equal(final.mod_revision, String(winners.reduce((a, r) => (r > a ? r : a), 0n)));
  });
});

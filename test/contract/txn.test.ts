/**
 * The general Txn (etcdctl and other clients send any shape): every compare target and result, range
 * compares, every op type in both branches, nested txns, one revision per txn.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { b, prefixEnd, rev, text } from '../support/bytes.js';
import { contractSuite } from '../support/contract.js';
import type { Compare, CompareResult, CompareTarget } from '../support/etcd-types.js';
import { ETCD_ERRORS } from '../support/etcd-errors.js';

await contractSuite('txn', (t) => {
  it('every compare target × result decides the branch', async () => {
    const key = b(`${t.prefix('txn-compare')}k`);
    const lease = await t.client.leaseGrant(60);
    const r1 = rev(await t.client.put({ key, value: b('m') }));
    const r2 = rev(await t.client.put({ key, value: b('m'), lease: lease.ID }));
    // Now: version 2, create_revision r1, mod_revision r2, value "m", lease lease.ID.
    const leaseId = BigInt(lease.ID);
    const actual: Record<CompareTarget, bigint | string> = { Version: 2n, Create: r1, Mod: r2, Value: 'm', Lease: leaseId };
    const operands: Record<CompareTarget, (bigint | string)[]> = {
      Version: [1n, 2n, 3n],
      Create: [r1 - 1n, r1, r1 + 1n],
      Mod: [r2 - 1n, r2, r2 + 1n],
      Value: ['l', 'm', 'n'],
      Lease: [leaseId - 1n, leaseId, leaseId + 1n],
    };
    const field = { Version: 'version', Create: 'create_revision', Mod: 'mod_revision', Value: 'value', Lease: 'lease' } as const;
    const holds = (result: CompareResult, a: bigint | string, o: bigint | string): boolean =>
      result === 'Equal' ? a === o : result === 'NotEqual' ? a !== o : result === 'Greater' ? a > o : a < o;

    for (const target of Object.keys(actual) as CompareTarget[]) {
      for (const operand of operands[target]) {
        for (const result of ['Equal', 'NotEqual', 'Greater', 'Less'] as CompareResult[]) {
          const cmp: Compare = {
            result,
            target,
            key,
            [field[target]]: target === 'Value' ? b(operand as string) : String(operand),
          };
          const res = await t.client.txn({ compare: [cmp] });
          assert.equal(
            res.succeeded,
            holds(result, actual[target], operand),
            `${target} ${result} ${String(operand)} (actual ${String(actual[target])})`,
          );
          assert.equal(rev(res), r2, 'a txn without ops never bumps the revision');
        }
      }
    }
    await t.client.leaseRevoke(lease.ID);
  });

  it('all compares must hold', async () => {
    const p = t.prefix('txn-all');
    await t.client.put({ key: b(`${p}a`), value: b('1') });
    await t.client.put({ key: b(`${p}b`), value: b('2') });
    const both = (bValue: string) =>
      t.client.txn({
        compare: [
          { result: 'Equal', target: 'Value', key: b(`${p}a`), value: b('1') },
          { result: 'Equal', target: 'Value', key: b(`${p}b`), value: b(bValue) },
        ],
      });
    assert.equal((await both('2')).succeeded, true);
    assert.equal((await both('3')).succeeded, false);
  });

  it('compare on an absent key sees version, create and mod revision 0; a value compare fails', async () => {
    const key = b(`${t.prefix('txn-absent')}nothing`);
    for (const [target, field] of [['Version', 'version'], ['Create', 'create_revision'], ['Mod', 'mod_revision']] as const) {
      const eq = await t.client.txn({ compare: [{ result: 'Equal', target, key, [field]: 0 }] });
      assert.equal(eq.succeeded, true, `${target} == 0 on an absent key`);
      const gt = await t.client.txn({ compare: [{ result: 'Greater', target, key, [field]: 0 }] });
      assert.equal(gt.succeeded, false, `${target} > 0 on an absent key`);
    }
    // etcd: comparing the value of a missing key always fails, whatever the operator.
    for (const result of ['Equal', 'NotEqual'] as const) {
      const res = await t.client.txn({ compare: [{ result, target: 'Value', key, value: b('') }] });
      assert.equal(res.succeeded, false, `Value ${result} on an absent key`);
    }
  });

  it('range compares hold only if every key in the range matches', async () => {
    const p = t.prefix('txn-range-compare');
    await t.client.put({ key: b(`${p}a`), value: b('x') });
    await t.client.put({ key: b(`${p}b`), value: b('x') });
    await t.client.put({ key: b(`${p}b`), value: b('y') });
    const range = { key: b(p), range_end: prefixEnd(p) };
    const cmp = async (c: Omit<Compare, 'key' | 'range_end'>) => (await t.client.txn({ compare: [{ ...c, ...range }] })).succeeded;
    assert.equal(await cmp({ result: 'Greater', target: 'Version', version: 0 }), true);
    assert.equal(await cmp({ result: 'Equal', target: 'Version', version: 1 }), false, 'b has version 2');
    assert.equal(await cmp({ result: 'Less', target: 'Version', version: 3 }), true);
    assert.equal(await cmp({ result: 'Equal', target: 'Value', value: b('x') }), false, 'b is y');
    assert.equal(await cmp({ result: 'NotEqual', target: 'Value', value: b('z') }), true);
    // An empty range compares like one absent key.
    const empty = `${p}zz/`;
    const none = await t.client.txn({
      compare: [{ result: 'Equal', target: 'Mod', key: b(empty), range_end: prefixEnd(empty), mod_revision: 0 }],
    });
    assert.equal(none.succeeded, true);
  });

  it('runs the failure branch when a compare fails, with every op type', async () => {
    const p = t.prefix('txn-branches');
    await t.client.put({ key: b(`${p}old`), value: b('o') });
    const r0 = rev(await t.client.put({ key: b(`${p}gone`), value: b('g') }));
    const res = await t.client.txn({
      compare: [{ result: 'Equal', target: 'Value', key: b(`${p}old`), value: b('not-o') }],
      success: [{ request_put: { key: b(`${p}never`), value: b('n') } }],
      failure: [
        { request_range: { key: b(`${p}old`) } },
        { request_put: { key: b(`${p}new`), value: b('n'), prev_kv: true } },
        { request_delete_range: { key: b(`${p}gone`), prev_kv: true } },
        { request_txn: { compare: [], success: [{ request_range: { key: b(`${p}new`) } }], failure: [] } },
      ],
    });
    assert.equal(res.succeeded, false);
    const r1 = rev(res);
    assert.equal(r1, r0 + 1n, 'the failure branch wrote, so exactly one new revision');
    assert.deepEqual(
      res.responses.map((r) => r.response),
      ['response_range', 'response_put', 'response_delete_range', 'response_txn'],
    );
    const [range, put, del, nested] = res.responses;
    assert.equal(text(range!.response_range!.kvs[0]!.value), 'o');
    assert.equal(put!.response_put!.prev_kv, null);
    assert.equal(del!.response_delete_range!.deleted, '1');
    assert.equal(text(del!.response_delete_range!.prev_kvs[0]!.value), 'g');
    assert.equal(nested!.response_txn!.succeeded, true);
    const nestedRange = nested!.response_txn!.responses[0]!;
    assert.equal(nestedRange.response, 'response_range');
    // Reads inside a txn see the txn's earlier writes.
    assert.equal(text(nestedRange.response_range!.kvs[0]!.value), 'n');
    assert.equal(nestedRange.response_range!.kvs[0]!.mod_revision, String(r1));
    assert.equal((await t.client.range({ key: b(`${p}never`) })).count, '0');
  });

  it('all writes of one txn share one revision, nested txns included', async () => {
    const p = t.prefix('txn-one-rev');
    await t.client.put({ key: b(`${p}d`), value: b('d') });
    const r0 = rev(await t.client.range({ key: b(p) }));
    const res = await t.client.txn({
      success: [
        { request_put: { key: b(`${p}a`), value: b('1') } },
        { request_put: { key: b(`${p}b`), value: b('2') } },
        { request_delete_range: { key: b(`${p}d`) } },
        {
          request_txn: {
            compare: [{ result: 'Equal', target: 'Version', key: b(`${p}c`), version: 0 }],
            success: [{ request_put: { key: b(`${p}c`), value: b('3') } }],
            failure: [],
          },
        },
      ],
    });
    assert.equal(res.succeeded, true);
    assert.equal(rev(res), r0 + 1n);
    assert.equal(res.responses[3]!.response_txn!.succeeded, true);
    const list = await t.client.range({ key: b(p), range_end: prefixEnd(p) });
    assert.deepEqual(
      list.kvs.map((kv) => [text(kv.key).slice(p.length), kv.mod_revision, kv.create_revision]),
      ['a', 'b', 'c'].map((k) => [k, String(r0 + 1n), String(r0 + 1n)]),
    );
  });

  it('a txn that only reads or fails its compare keeps the revision', async () => {
    const p = t.prefix('txn-no-bump');
    const r0 = rev(await t.client.put({ key: b(`${p}k`), value: b('v') }));
    const read = await t.client.txn({ success: [{ request_range: { key: b(`${p}k`) } }] });
    assert.equal(rev(read), r0);
    const failed = await t.client.txn({
      compare: [{ result: 'Equal', target: 'Version', key: b(`${p}k`), version: 7 }],
      success: [{ request_put: { key: b(`${p}k`), value: b('w') } }],
      failure: [{ request_range: { key: b(`${p}k`) } }],
    });
    assert.equal(failed.succeeded, false);
    assert.equal(rev(failed), r0);
    const empty = await t.client.txn({});
    assert.equal(empty.succeeded, true, 'no compares: the success branch runs');
    assert.equal(rev(empty), r0);
    assert.equal(rev(await t.client.range({ key: b(`${p}k`) })), r0);
  });

  it('rejects a txn writing the same key twice', async () => {
    const key = b(`${t.prefix('txn-dup')}k`);
    await assert.rejects(
      t.client.txn({ success: [{ request_put: { key, value: b('1') } }, { request_put: { key, value: b('2') } }] }),
      ETCD_ERRORS.duplicateKeyInTxn,
    );
    await assert.rejects(
      t.client.txn({ success: [{ request_put: { key, value: b('1') } }, { request_delete_range: { key } }] }),
      ETCD_ERRORS.duplicateKeyInTxn,
    );
    assert.equal((await t.client.range({ key })).count, '0', 'a rejected txn writes nothing');
  });
});

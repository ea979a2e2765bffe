/**
 * The bench's routed topology (bench/layered.ts) splits every row's keys as the bench claims: the document
 * validates as the middleware validates it, and the router's own rule matcher sends loadgen's keys of
 * namespace ns-<i> to backend i (ns-0: the default), a quarter of a row's keys to each. Pure: no processes
 * (the bench itself counts the keys in each backend after a run).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ROUTED_NAMESPACES, routedKeyArgs, routedResource, routedTopology } from '../../bench/layered.js';
import { ROWS } from '../../bench/rows.js';
import { compileRule } from '../../middleware/src/router/rules.js';
import { validateTopology } from '../../middleware/src/topology/validate.js';

const doc = routedTopology({ postgres: 'postgres://postgres@127.0.0.1:5432/x', etcd: 'http://127.0.0.1:2379', child: 'http://127.0.0.1:2479' });

const validated = validateTopology(doc);
const matchers = validated.ok ? validated.value.backends.map(compileRule) : [];

/** The backend the first matching rule names, as the router decides it; 'default' when none matches. */
function backendOf(key: string): string {
  return matchers.find((m) => m.matchesKey(Buffer.from(key)))?.backend ?? 'default';
}

/** Key i of a row as tools/loadgen's keyAt lays it out with --prefix P --namespaces N (sub: "" or "<phase>/"). */
function loadgenKey(row: string, i: number, sub = ''): string {
  const [, prefix, , n] = routedKeyArgs(row);
  return `${prefix}ns-${i % Number(n)}/${sub}${String(i).padStart(8, '0')}`;
}

test('the routed document is valid and puts each namespace of every row in its own backend', () => {
  assert.ok(validated.ok, JSON.stringify(!validated.ok && validated.issues));
  assert.equal(ROUTED_NAMESPACES, 4);
  for (const row of ROWS.map((r) => r.name)) {
    const seen = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      for (const sub of ['', 'measure/']) {
        const backend = backendOf(loadgenKey(row, i, sub));
        assert.equal(backend, ['default', 'postgres', 'etcd', 'child'][i % 4], `${loadgenKey(row, i, sub)}`);
        seen.set(backend, (seen.get(backend) ?? 0) + 1);
      }
    }
    assert.deepEqual([...seen.values()], [200, 200, 200, 200], `${row}: a quarter of the keys in each backend`);
  }
});

test('keys of the other targets and of other resources are not routed', () => {
  assert.equal(backendOf('/registry/bench/put-64-a1b2c3/ns-1/00000001'), 'default', 'another resource');
  assert.equal(backendOf(`/registry/${routedResource('put-64')}/ns-4/00000004`), 'default', 'a namespace without a rule');
  assert.equal(backendOf('/registry/configmaps/ns-1/x'), 'default', 'a built-in resource the rules do not name');
});

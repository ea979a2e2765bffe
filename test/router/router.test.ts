import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BackendRule } from '../../middleware/src/topology/schema.js';
import { validateTopology } from '../../middleware/src/topology/validate.js';
import { DEFAULT_BACKEND, Router } from '../../middleware/src/router/router.js';
import { prefixRangeEnd } from '../../middleware/src/router/rules.js';
import { Gen } from './gen.js';

const b = (s: string) => Buffer.from(s, 'utf8');
const EVERYTHING = Buffer.alloc(0);
const ALL_START = Buffer.from([0]);
let n = 0;
const r = (name: string, match: Partial<BackendRule>): BackendRule => ({ name, endpoint: `sqlite://./r${n++}.db`, ...match });
const under = (prefix: string): [Buffer, Buffer] => [b(prefix), prefixEnd(prefix)];
function prefixEnd(prefix: string): Buffer {
  return prefixRangeEnd(b(prefix)) ?? EVERYTHING;
}

const topology = [
  r('kube-system', { namespace: { namespace: 'kube-system' } }),
  r('pods', { prefix: { prefix: 'pods/' } }),
  r('rbac', { regexp: { key: '^/registry/(clusterrolebindings|clusterroles|rolebindings|roles)/' } }),
  r('shirts', { customresource: { group: 'stable.example.com', kind: 'shirts' } }),
  r('example', { customresource: { group: 'stable.example.com' } }),
];

test('the rules of the test topology are valid', () => {
  const v = validateTopology({ backends: topology });
  assert.ok(v.ok, JSON.stringify(v));
});

test('backendFor: first match wins across match types, unmatched keys go to the default', () => {
  const router = new Router(topology);
  const cases: [string, string][] = [
    ['/registry/pods/kube-system/coredns', 'kube-system'], // namespace rule precedes the pods prefix
    ['/registry/pods/default/web', 'pods'],
    ['/registry/services/specs/kube-system/kube-dns', 'kube-system'],
    ['/registry/services/specs/default/kubernetes', DEFAULT_BACKEND],
    ['/registry/namespaces/kube-system', DEFAULT_BACKEND],
    ['/registry/roles/kube-system/r', 'kube-system'], // roles are namespaced: the earlier namespace rule takes them
    ['/registry/roles/default/r', 'rbac'],
    ['/registry/clusterroles/admin', 'rbac'],
    ['/registry/stable.example.com/shirts/kube-system/x', 'shirts'], // custom resources escape namespace rules
    ['/registry/stable.example.com/hats/default/h', 'example'],
    ['/registry/minions/node-1', DEFAULT_BACKEND],
    ['/registry/masterleases/10.0.0.1', DEFAULT_BACKEND],
    ['compact_rev_key', DEFAULT_BACKEND],
    ['health', DEFAULT_BACKEND],
  ];
  for (const [key, want] of cases) assert.equal(router.backendFor(b(key)), want, key);
  // rule order, not match type, decides
  const flipped = new Router([topology[1]!, topology[0]!]);
  assert.equal(flipped.backendFor(b('/registry/pods/kube-system/coredns')), 'pods');
  assert.equal(flipped.backendFor(b('/registry/configmaps/kube-system/c')), 'kube-system');
});

test('an empty topology routes everything to the default backend', () => {
  const router = new Router([]);
  assert.equal(router.backendFor(b('/registry/pods/default/a')), DEFAULT_BACKEND);
  assert.deepEqual(router.backendsFor(ALL_START, EVERYTHING), [DEFAULT_BACKEND]);
  assert.deepEqual(router.rules, []);
});

test('backendsFor: a cluster-wide pod list is split between the namespace rule and the default', () => {
  const router = new Router([r('ks', { namespace: { namespace: 'kube-system' } })]);
  assert.deepEqual(router.backendsFor(...under('/registry/pods/')), [DEFAULT_BACKEND, 'ks']);
  assert.deepEqual(router.backendsFor(...under('/registry/pods/kube-system/')), ['ks']);
  assert.deepEqual(router.backendsFor(...under('/registry/pods/default/')), [DEFAULT_BACKEND]);
  assert.deepEqual(router.backendsFor(...under('/registry/namespaces/')), [DEFAULT_BACKEND]);
  assert.deepEqual(router.backendsFor(...under('/registry/stable.example.com/')), [DEFAULT_BACKEND]);
});

test('backendsFor: a range inside one prefix rule needs only that backend', () => {
  const router = new Router(topology);
  assert.deepEqual(router.backendsFor(...under('/registry/pods/default/')), ['pods']);
  assert.deepEqual(router.backendsFor(b('/registry/pods/default/a'), b('/registry/pods/default/m')), ['pods']);
  // all pods: the namespace rule takes kube-system's, the prefix rule the rest; nothing is left for the default
  assert.deepEqual(router.backendsFor(...under('/registry/pods/')), ['kube-system', 'pods']);
  // a regexp rule's key set cannot be analysed, so an earlier one is always asked too
  assert.deepEqual(router.backendsFor(...under('/registry/stable.example.com/shirts/')), ['rbac', 'shirts']);
  assert.deepEqual(new Router(topology.slice(3)).backendsFor(...under('/registry/stable.example.com/shirts/')), ['shirts']);
  // the group rule's other plurals, and a regexp rule that might match anything
  assert.deepEqual(router.backendsFor(...under('/registry/stable.example.com/')), ['rbac', 'shirts', 'example']);
  assert.deepEqual(router.backendsFor(...under('/registry/configmaps/')), [DEFAULT_BACKEND, 'kube-system', 'rbac']);
});

test('backendsFor: rules wholly shadowed by earlier ones are left out', () => {
  const router = new Router([
    r('all-pods', { prefix: { prefix: 'pods' } }),
    r('default-pods', { prefix: { prefix: 'pods/default/' } }),
    r('ks', { namespace: { namespace: 'kube-system', kinds: ['pods', 'secrets'] } }),
  ]);
  assert.deepEqual(router.backendsFor(...under('/registry/')), [DEFAULT_BACKEND, 'all-pods', 'ks']);
  assert.deepEqual(router.backendsFor(...under('/registry/pods/')), ['all-pods']);
  assert.equal(router.backendFor(b('/registry/pods/default/x')), 'all-pods');
});

test('backendsFor: the whole keyspace and the single-key form', () => {
  const router = new Router(topology);
  assert.deepEqual(router.backendsFor(ALL_START, EVERYTHING), [DEFAULT_BACKEND, 'kube-system', 'pods', 'rbac', 'shirts', 'example']);
  assert.deepEqual(router.backendsFor(b('/registry/pods/kube-system/a'), undefined), ['kube-system']);
  assert.deepEqual(router.backendsFor(b('compact_rev_key'), undefined), [DEFAULT_BACKEND]);
  // keys from a start to the end of the keyspace
  assert.deepEqual(router.backendsFor(b('/registry/pods/zzz'), EVERYTHING), [DEFAULT_BACKEND, 'kube-system', 'pods', 'rbac', 'shirts', 'example']);
  // pods sort before it; statefulsets (kube-system) after
  assert.deepEqual(router.backendsFor(b('/registry/stable.example.com/shirts/z'), EVERYTHING), [DEFAULT_BACKEND, 'kube-system', 'rbac', 'shirts', 'example']);
  assert.deepEqual(router.backendsFor(b('/registry/x'), EVERYTHING), [DEFAULT_BACKEND, 'rbac']);
  // an empty range holds no key; the default answers it
  assert.deepEqual(router.backendsFor(b('/registry/pods/b'), b('/registry/pods/a')), [DEFAULT_BACKEND]);
});

test('binary keys that are not UTF-8 route by their bytes', () => {
  const router = new Router(topology);
  const bin = (s: string, ...bytes: number[]) => Buffer.concat([b(s), Buffer.from(bytes)]);
  assert.equal(router.backendFor(bin('/registry/pods/kube-system/', 0xff, 0xfe)), 'kube-system');
  assert.equal(router.backendFor(bin('/registry/pods/', 0xc3, 0x28, 0x2f, 0x61)), 'pods');
  assert.equal(router.backendFor(Buffer.from([0xff, 0x00, 0x80])), DEFAULT_BACKEND);
  assert.deepEqual(router.backendsFor(Buffer.from([0xff]), EVERYTHING), [DEFAULT_BACKEND, 'rbac']);
  assert.deepEqual(router.backendsFor(bin('/registry/pods/', 0xff), EVERYTHING), [DEFAULT_BACKEND, 'kube-system', 'pods', 'rbac', 'shirts', 'example']);
  assert.deepEqual(router.backendsFor(bin('/registry/pods/', 0xff), bin('/registry/pods/', 0xff, 0xff)), ['pods']);
});

test('property: every key of a range is served by one of the backends backendsFor names', () => {
  const g = new Gen(7);
  let checked = 0;
  for (let t = 0; t < 400; t++) {
    const rules = g.rules();
    const v = validateTopology({ backends: rules });
    assert.ok(v.ok, JSON.stringify(v));
    const router = new Router(rules);
    const pool = Array.from({ length: 80 }, () => g.key());
    for (let i = 0; i < 25; i++) {
      const { start, end } = g.range();
      const backends = router.backendsFor(start, end);
      assert.equal(new Set(backends).size, backends.length, 'no duplicates');
      if (end === undefined) assert.deepEqual(backends, [router.backendFor(start)]);
      const order = ['', ...rules.map((x) => x.name)];
      assert.deepEqual([...backends].sort((x, y) => order.indexOf(x) - order.indexOf(y)), backends, 'default first, then rule order');
      for (const k of g.keysIn(start, end, pool)) {
        const owner = router.backendFor(k);
        checked++;
        assert.ok(
          backends.includes(owner),
          `${JSON.stringify(rules)}\nkey ${JSON.stringify(k.toString('latin1'))} owned by "${owner}" but [${start.toString('latin1')}, ${end?.toString('latin1')}) -> ${JSON.stringify(backends)}`,
        );
      }
    }
  }
  assert.ok(checked > 10_000, `only ${checked} keys checked`);
});

test('backendFor agrees with a freshly compiled router and keeps no state between keys', () => {
  const g = new Gen(99);
  const router = new Router(topology);
  const keys = Array.from({ length: 2000 }, () => g.key());
  const first = keys.map((k) => router.backendFor(k));
  const again = keys.map((k) => new Router(topology).backendFor(k));
  assert.deepEqual(first, again);
});

/**
 * The key layout of kube-apiserver: storage paths and aliases (router/key-layout.ts), the curated namespaced
 * built-ins as a namespace rule routes them, and the reference classifier tests check routing against
 * (test/support/storage-keys.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  NAMESPACED_RESOURCES,
  canonicalResource,
  namespacedKeyPrefix,
  storagePath,
} from '../../middleware/src/router/key-layout.js';
import { compileRule } from '../../middleware/src/router/rules.js';
import { CLUSTER_RESOURCES, parseStorageKey } from '../support/storage-keys.js';
import { Gen } from './gen.js';

/** A namespace rule without kinds: it routes every curated namespaced built-in of its namespace. */
const everyNamespacedKind = (namespace: string) => compileRule({ name: namespace, endpoint: 'sqlite://./n.db', namespace: { namespace } });
const TEAM = everyNamespacedKind('team');

/** True when a namespace rule without kinds routes objects of `kind` (a plural, storage name or alias). */
function isNamespacedResource(kind: string): boolean {
  const prefix = namespacedKeyPrefix(kind, 'team');
  return prefix !== undefined && TEAM.matchesKey(Buffer.from(`${prefix}x`));
}

test('namespaced built-ins parse into resource, namespace and name', () => {
  assert.deepEqual(parseStorageKey(Buffer.from('/registry/pods/kube-system/coredns-1')), {
    layout: 'namespaced', resource: 'pods', namespace: 'kube-system', name: 'coredns-1',
  });
  assert.deepEqual(parseStorageKey('/registry/controllers/default/rc'), {
    layout: 'namespaced', resource: 'controllers', namespace: 'default', name: 'rc',
  });
  assert.deepEqual(parseStorageKey('/registry/ingress/web/site'), { layout: 'namespaced', resource: 'ingress', namespace: 'web', name: 'site' });
  // a list prefix has a namespace and no name
  assert.deepEqual(parseStorageKey('/registry/secrets/default/'), { layout: 'namespaced', resource: 'secrets', namespace: 'default', name: '' });
  assert.deepEqual(parseStorageKey('/registry/secrets/default'), { layout: 'namespaced', resource: 'secrets', namespace: 'default' });
});

test('services and endpoints live under /registry/services/', () => {
  assert.deepEqual(parseStorageKey('/registry/services/specs/default/kubernetes'), {
    layout: 'namespaced', resource: 'services', namespace: 'default', name: 'kubernetes',
  });
  assert.deepEqual(parseStorageKey('/registry/services/endpoints/default/kubernetes'), {
    layout: 'namespaced', resource: 'endpoints', namespace: 'default', name: 'kubernetes',
  });
  assert.equal(parseStorageKey('/registry/services/other/x').layout, 'unknown');
});

test('cluster-scoped built-ins are not namespaced', () => {
  assert.deepEqual(parseStorageKey('/registry/namespaces/kube-system'), { layout: 'cluster', resource: 'namespaces', name: 'kube-system' });
  assert.deepEqual(parseStorageKey('/registry/minions/node-1'), { layout: 'cluster', resource: 'minions', name: 'node-1' });
  for (const r of ['namespaces', 'minions', 'persistentvolumes', 'clusterroles', 'clusterrolebindings', 'priorityclasses', 'storageclasses']) {
    assert.equal(isNamespacedResource(r), false, r);
    assert.equal(parseStorageKey(`/registry/${r}/x`).layout, 'cluster', r);
  }
});

test('group keys: custom resources and aggregated APIs, with and without namespace', () => {
  assert.deepEqual(parseStorageKey('/registry/stable.example.com/shirts/kube-system/x'), {
    layout: 'group', group: 'stable.example.com', resource: 'shirts', namespace: 'kube-system', name: 'x',
  });
  assert.deepEqual(parseStorageKey('/registry/apiextensions.k8s.io/customresourcedefinitions/shirts.stable.example.com'), {
    layout: 'group', group: 'apiextensions.k8s.io', resource: 'customresourcedefinitions', name: 'shirts.stable.example.com',
  });
  assert.deepEqual(parseStorageKey('/registry/stable.example.com/'), { layout: 'group', group: 'stable.example.com', resource: '' });
});

test('special keys and keys outside /registry', () => {
  assert.deepEqual(parseStorageKey('/registry/masterleases/10.0.0.1'), { layout: 'special', resource: 'masterleases', name: '10.0.0.1' });
  assert.deepEqual(parseStorageKey('/registry/ranges/serviceips'), { layout: 'special', resource: 'ranges', name: 'serviceips' });
  assert.deepEqual(parseStorageKey('/registry/health'), { layout: 'special', resource: 'health' });
  assert.deepEqual(parseStorageKey('compact_rev_key'), { layout: 'outside', name: 'compact_rev_key' });
  assert.deepEqual(parseStorageKey('health'), { layout: 'outside', name: 'health' });
  assert.deepEqual(parseStorageKey('/registry/somethingnew/a/b'), { layout: 'unknown', resource: 'somethingnew', name: 'a/b' });
});

test('the curated lists are disjoint, have no duplicates and cover the well-known namespaced resources', () => {
  assert.equal(new Set(NAMESPACED_RESOURCES).size, NAMESPACED_RESOURCES.length);
  assert.equal(new Set(CLUSTER_RESOURCES).size, CLUSTER_RESOURCES.length);
  for (const r of NAMESPACED_RESOURCES) {
    assert.ok(!CLUSTER_RESOURCES.includes(r), r);
    assert.ok(!r.includes('.') && !r.includes('/'), r);
  }
  for (const r of [
    'pods', 'configmaps', 'secrets', 'serviceaccounts', 'deployments', 'replicasets', 'statefulsets', 'daemonsets', 'jobs',
    'cronjobs', 'controllerrevisions', 'controllers', 'services', 'endpoints', 'endpointslices', 'events', 'leases',
    'limitranges', 'resourcequotas', 'persistentvolumeclaims', 'podtemplates', 'roles', 'rolebindings', 'networkpolicies',
    'ingress', 'poddisruptionbudgets', 'horizontalpodautoscalers', 'csistoragecapacities', 'resourceclaims',
    'resourceclaimtemplates',
  ]) {
    assert.ok(isNamespacedResource(r), r);
  }
});

test('aliases and storage paths', () => {
  assert.equal(canonicalResource('replicationcontrollers'), 'controllers');
  assert.equal(canonicalResource('ingresses'), 'ingress');
  assert.equal(canonicalResource('services/endpoints'), 'endpoints');
  assert.equal(canonicalResource('toString'), 'toString'); // not an inherited property
  assert.ok(isNamespacedResource('replicationcontrollers'));
  assert.equal(storagePath('services'), 'services/specs');
  assert.equal(storagePath('endpoints'), 'services/endpoints');
  assert.equal(storagePath('services/specs'), 'services/specs');
  assert.equal(storagePath('pods'), 'pods');
  assert.equal(storagePath('shirts.stable.example.com'), undefined);
  assert.equal(storagePath('a/b'), undefined);
  assert.equal(namespacedKeyPrefix('services', 'kube-system'), '/registry/services/specs/kube-system/');
  assert.equal(namespacedKeyPrefix('replicationcontrollers', 'a'), '/registry/controllers/a/');
});

test('property: a namespace rule without kinds routes exactly the keys the layout names namespaced objects of its namespace', () => {
  const g = new Gen(20260601);
  let routed = 0;
  for (const namespace of g.namespaces) {
    const rule = everyNamespacedKind(namespace);
    for (let i = 0; i < 1500; i++) {
      const key = g.key();
      const p = parseStorageKey(key);
      const expected = p.layout === 'namespaced' && p.namespace === namespace && p.name !== undefined;
      assert.equal(rule.matchesKey(key), expected, `${namespace}: ${key.toString('latin1')} (${JSON.stringify(p)})`);
      if (expected) routed++;
    }
  }
  assert.ok(routed > 100, `only ${routed} generated keys were namespaced objects of the rule's namespace`);
});

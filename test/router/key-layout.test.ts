import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CLUSTER_RESOURCES,
  NAMESPACED_RESOURCES,
  canonicalResource,
  isNamespacedResource,
  namespacedKeyPrefix,
  parseKey,
  storagePath,
} from '../../middleware/src/router/key-layout.js';

test('namespaced built-ins parse into resource, namespace and name', () => {
  assert.deepEqual(parseKey(Buffer.from('/registry/pods/kube-system/coredns-1')), {
    layout: 'namespaced', resource: 'pods', namespace: 'kube-system', name: 'coredns-1',
  });
  assert.deepEqual(parseKey('/registry/controllers/default/rc'), {
    layout: 'namespaced', resource: 'controllers', namespace: 'default', name: 'rc',
  });
  assert.deepEqual(parseKey('/registry/ingress/web/site'), { layout: 'namespaced', resource: 'ingress', namespace: 'web', name: 'site' });
  // a list prefix has a namespace and no name
  assert.deepEqual(parseKey('/registry/secrets/default/'), { layout: 'namespaced', resource: 'secrets', namespace: 'default', name: '' });
  assert.deepEqual(parseKey('/registry/secrets/default'), { layout: 'namespaced', resource: 'secrets', namespace: 'default' });
});

test('services and endpoints live under /registry/services/', () => {
  assert.deepEqual(parseKey('/registry/services/specs/default/kubernetes'), {
    layout: 'namespaced', resource: 'services', namespace: 'default', name: 'kubernetes',
  });
  assert.deepEqual(parseKey('/registry/services/endpoints/default/kubernetes'), {
    layout: 'namespaced', resource: 'endpoints', namespace: 'default', name: 'kubernetes',
  });
  assert.equal(parseKey('/registry/services/other/x').layout, 'unknown');
});

test('cluster-scoped built-ins are not namespaced', () => {
  assert.deepEqual(parseKey('/registry/namespaces/kube-system'), { layout: 'cluster', resource: 'namespaces', name: 'kube-system' });
  assert.deepEqual(parseKey('/registry/minions/node-1'), { layout: 'cluster', resource: 'minions', name: 'node-1' });
  for (const r of ['namespaces', 'minions', 'persistentvolumes', 'clusterroles', 'clusterrolebindings', 'priorityclasses', 'storageclasses']) {
    assert.equal(isNamespacedResource(r), false, r);
    assert.equal(parseKey(`/registry/${r}/x`).layout, 'cluster', r);
  }
});

test('group keys: custom resources and aggregated APIs, with and without namespace', () => {
  assert.deepEqual(parseKey('/registry/stable.example.com/shirts/kube-system/x'), {
    layout: 'group', group: 'stable.example.com', resource: 'shirts', namespace: 'kube-system', name: 'x',
  });
  assert.deepEqual(parseKey('/registry/apiextensions.k8s.io/customresourcedefinitions/shirts.stable.example.com'), {
    layout: 'group', group: 'apiextensions.k8s.io', resource: 'customresourcedefinitions', name: 'shirts.stable.example.com',
  });
  assert.deepEqual(parseKey('/registry/stable.example.com/'), { layout: 'group', group: 'stable.example.com', resource: '' });
});

test('special keys and keys outside /registry', () => {
  assert.deepEqual(parseKey('/registry/masterleases/10.0.0.1'), { layout: 'special', resource: 'masterleases', name: '10.0.0.1' });
  assert.deepEqual(parseKey('/registry/ranges/serviceips'), { layout: 'special', resource: 'ranges', name: 'serviceips' });
  assert.deepEqual(parseKey('/registry/health'), { layout: 'special', resource: 'health' });
  assert.deepEqual(parseKey('compact_rev_key'), { layout: 'outside', name: 'compact_rev_key' });
  assert.deepEqual(parseKey('health'), { layout: 'outside', name: 'health' });
  assert.deepEqual(parseKey('/registry/somethingnew/a/b'), { layout: 'unknown', resource: 'somethingnew', name: 'a/b' });
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

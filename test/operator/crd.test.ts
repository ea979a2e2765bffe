/** The TopologyConfig CRD, generated from the TypeBox schemas; objects from the builder must fit it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TOPOLOGYCONFIG_GROUP,
  TOPOLOGYCONFIG_KIND,
  TOPOLOGYCONFIG_PLURAL,
  TOPOLOGYCONFIG_VERSION,
  toStructuralSchema,
  topologyConfigCrd,
} from '../../middleware/src/topology/crd.js';
import { topologyConfig } from '../../middleware/src/topology/topologyconfig.js';
import { sealEndpoint } from '../../middleware/src/operator/decrypt.js';
import { nextStatus } from '../../middleware/src/operator/status.js';
import { checkAgainstSchema } from './openapi-check.js';

const crd = topologyConfigCrd();
const version = crd.spec.versions[0];
const root = version.schema.openAPIV3Schema;
const spec = root.properties.spec;
const rule = spec.properties.backends.items;

test('names, scope, version, status subresource and printer columns', () => {
  assert.equal(crd.apiVersion, 'apiextensions.k8s.io/v1');
  assert.equal(crd.kind, 'CustomResourceDefinition');
  assert.equal(crd.metadata.name, `${TOPOLOGYCONFIG_PLURAL}.${TOPOLOGYCONFIG_GROUP}`);
  assert.equal(crd.spec.group, 'harikube.info');
  assert.deepEqual(crd.spec.names, { kind: TOPOLOGYCONFIG_KIND, listKind: 'TopologyConfigList', plural: 'topologyconfigs', singular: 'topologyconfig' });
  assert.equal(crd.spec.scope, 'Namespaced');
  assert.equal(crd.spec.versions.length, 1);
  assert.equal(version.name, TOPOLOGYCONFIG_VERSION);
  assert.equal(version.served && version.storage, true);
  assert.deepEqual(version.subresources, { status: {} });
  assert.deepEqual(
    version.additionalPrinterColumns.map((c: any) => [c.name, c.type, c.jsonPath]),
    [
      ['DeployStatus', 'string', '.status.deployStatus'],
      ['TargetSecret', 'string', '.spec.targetSecret'],
      ['Position', 'integer', '.spec.position'],
      ['Age', 'date', '.metadata.creationTimestamp'],
    ],
  );
});

test('the spec keeps the old CRD fields, requirements, defaults and bounds', () => {
  assert.deepEqual(spec.required, ['backends', 'position']);
  assert.equal(spec.properties.position.type, 'integer');
  assert.equal(spec.properties.position.minimum, 1);
  assert.equal(spec.properties.targetSecret.default, 'harikube/topology-config');
  assert.equal(spec.properties.endpointDecryptSecret.type, 'string');
  assert.equal(spec.properties.backends.minItems, 1);
  assert.deepEqual(rule.required, ['name', 'endpoint']);
  const old: Record<string, string[]> = {
    backendTLS: ['caFile', 'certFile', 'keyFile', 'skipVerify'],
    connectionPool: ['maxIdle', 'maxIdleLifeTime', 'maxLifeTime', 'maxOpen'],
    customresource: ['group', 'kind'],
    namespace: ['kinds', 'namespace'],
    prefix: ['prefix'],
    regexp: ['key', 'prefix'],
  };
  for (const [block, fields] of Object.entries(old)) {
    assert.equal(rule.properties[block].type, 'object', block);
    for (const f of fields) assert.ok(rule.properties[block].properties[f], `${block}.${f}`);
  }
  assert.equal(rule.properties.connectionPool.properties.maxIdle.minimum, 0);
  assert.match(rule.properties.name.description, /Unique/);
});

test('durations are int-or-string, and the schema is structural (typed nodes, no additionalProperties: false)', () => {
  for (const d of [rule.properties.compactInterval, rule.properties.connectionPool.properties.maxLifeTime]) {
    assert.equal(d['x-kubernetes-int-or-string'], true);
    assert.equal(d.type, undefined);
    assert.equal(d.anyOf, undefined);
    assert.match(d.description, /duration/);
  }
  const walk = (node: any, path: string) => {
    assert.ok(node.type || node['x-kubernetes-int-or-string'], `${path} has a type`);
    assert.notEqual(node.additionalProperties, false, `${path} has no additionalProperties: false`);
    for (const banned of ['$id', 'anyOf', 'oneOf', 'allOf', 'const', 'harikube-duration']) assert.equal(node[banned], undefined, `${path}.${banned}`);
    for (const [k, child] of Object.entries(node.properties ?? {})) walk(child, `${path}.${k}`);
    if (node.items) walk(node.items, `${path}[]`);
  };
  walk(root, '$');
});

test('the status schema has deployStatus, its reason, observedGeneration and list-map conditions', () => {
  const status = root.properties.status;
  assert.deepEqual(status.properties.deployStatus.enum, ['Pending', 'Active', 'Failed', 'Migrating']);
  assert.equal(status.properties.deployStatus.default, 'Pending');
  assert.equal(status.properties.deployStatusReason.type, 'string');
  assert.equal(status.properties.observedGeneration.type, 'integer');
  const conditions = status.properties.conditions;
  assert.equal(conditions['x-kubernetes-list-type'], 'map');
  assert.deepEqual(conditions['x-kubernetes-list-map-keys'], ['type']);
  assert.deepEqual([...conditions.items.required].sort(), ['lastTransitionTime', 'message', 'reason', 'status', 'type']);
});

test('objects built by topologyConfig(), with a status written by the operator, fit the CRD schema', () => {
  const obj = topologyConfig({
    name: 'shop',
    namespace: 'team-a',
    position: 10,
    labels: { app: 'shop' },
    backends: [
      { name: 'shop-pods', endpoint: 'postgres://u:p@db:5432/pods', namespace: { namespace: 'shop', kinds: ['pods'] }, compactInterval: '5m' },
      {
        name: 'shirts',
        endpoint: 'sqlite://./db/shirts.db',
        customresource: { group: 'stable.example.com', kind: 'shirts' },
        connectionPool: { maxIdle: 5, maxOpen: 20, maxLifeTime: 300_000_000_000, maxIdleLifeTime: '1m' },
        backendTLS: { caFile: '/tls/ca.crt', skipVerify: false },
        compactBatchSize: 1000,
      },
      { name: 'rbac', endpoint: 'https://etcd:2379', regexp: { key: '(roles|rolebindings)' } },
    ],
  });
  const status = nextStatus(undefined, 1, { deployStatus: 'Active', conditionReason: 'Applied', message: 'ok' }, new Date());
  assert.deepEqual(checkAgainstSchema(root, { ...obj, status }), []);

  const sealed = topologyConfig({
    name: 'sealed',
    namespace: 'team-a',
    position: 1,
    endpointDecryptSecret: 'harikube/keys',
    backends: [{ name: 'x', endpoint: sealEndpoint('sqlite://./x.db', Buffer.alloc(32, 1)), prefix: { prefix: 'x' } }],
  });
  assert.deepEqual(checkAgainstSchema(root, sealed), []);
});

test('the schema check rejects what the API server would reject (so the check above means something)', () => {
  const good = topologyConfig({ name: 'a', namespace: 'b', position: 1, backends: [{ name: 'x', endpoint: 'sqlite://./x.db', prefix: { prefix: 'x' } }] });
  const bad = (mutate: (o: any) => void) => {
    const o = structuredClone(good) as any;
    mutate(o);
    return checkAgainstSchema(root, o).join('\n');
  };
  assert.match(bad((o) => (o.spec.position = 0)), /\$\.spec\.position: must be >= 1/);
  assert.match(bad((o) => delete o.spec.backends[0].endpoint), /required field "endpoint"/);
  assert.match(bad((o) => (o.spec.backends = [])), /at least 1/);
  assert.match(bad((o) => (o.spec.backends[0].prefx = {})), /unknown field "prefx"/);
  assert.match(bad((o) => (o.spec.backends[0].compactInterval = true)), /integer or a string/);
  assert.match(bad((o) => (o.spec.targetSecret = 'no-slash')), /does not match/);
});

test('the converter refuses unions it cannot express instead of emitting a non-structural schema', () => {
  assert.throws(
    () => toStructuralSchema({ type: 'object', properties: { x: { anyOf: [{ type: 'string' }, { type: 'boolean' }] } } }),
    /\(root\)\.x: a union other than literals or a duration/,
  );
});

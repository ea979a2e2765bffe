/** The typed TopologyConfig builder validates like the operator and names the resource, rule and field. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { topologyConfig } from '../../middleware/src/topology/topologyconfig.js';
import { TopologyValidationError } from '../../middleware/src/topology/validate.js';
import { sealEndpoint } from '../../middleware/src/operator/decrypt.js';

const pods = { name: 'pods', endpoint: 'postgres://u:p@db:5432/pods', prefix: { prefix: 'pods' } };

test('builds a harikube.info/v1 TopologyConfig with the default target Secret filled in', () => {
  const obj = topologyConfig({ name: 'shop', namespace: 'team-a', position: 10, backends: [pods], labels: { app: 'shop' } });
  assert.deepEqual(obj, {
    apiVersion: 'harikube.info/v1',
    kind: 'TopologyConfig',
    metadata: { name: 'shop', namespace: 'team-a', labels: { app: 'shop' } },
    spec: { backends: [pods], position: 10, targetSecret: 'harikube/topology-config' },
  });
});

test('an invalid resource throws TopologyValidationError naming the resource, rule and field', () => {
  assert.throws(
    () =>
      topologyConfig({
        name: 'shop',
        namespace: 'team-a',
        position: 1,
        backends: [pods, { name: 'rbac', endpoint: 'https://etcd:2379', regexp: { key: '(' } }],
      }),
    (e: Error) => {
      assert.ok(e instanceof TopologyValidationError);
      assert.equal(e.source, 'TopologyConfig team-a/shop');
      assert.match(e.message, /TopologyConfig team-a\/shop/);
      assert.match(e.message, /backends\[1\] \(name "rbac"\): field "regexp.key": does not compile/);
      return true;
    },
  );
  assert.throws(() => topologyConfig({ name: 'x', namespace: 'y', position: 0, backends: [pods] }), /field "position"/);
  assert.throws(() => topologyConfig({ name: 'x', namespace: 'y', position: 1, backends: [] }), /field "backends"/);
  assert.throws(() => topologyConfig({ name: 'Bad_Name', namespace: 'y', position: 1, backends: [pods] }), /field "metadata.name"/);
  assert.throws(
    () => topologyConfig({ name: 'x', namespace: 'y', position: 1, backends: [pods], targetSecret: 'no-namespace' }),
    /field "targetSecret"/,
  );
});

test('with endpointDecryptSecret, endpoints must be sealed; the rest of each rule is still checked', () => {
  const key = Buffer.alloc(32, 3);
  const sealed = sealEndpoint(pods.endpoint, key);
  const obj = topologyConfig({ name: 's', namespace: 'n', position: 1, endpointDecryptSecret: 'harikube/keys', backends: [{ ...pods, endpoint: sealed }] });
  assert.equal(obj.spec.backends[0]!.endpoint, sealed, 'the sealed value is kept as given');

  assert.throws(
    () => topologyConfig({ name: 's', namespace: 'n', position: 1, endpointDecryptSecret: 'harikube/keys', backends: [pods] }),
    /backends\[0\] \(name "pods"\): field "endpoint": endpointDecryptSecret is set, so the endpoint must be base64/,
  );
  assert.throws(
    () =>
      topologyConfig({
        name: 's',
        namespace: 'n',
        position: 1,
        endpointDecryptSecret: 'harikube/keys',
        backends: [
          { ...pods, endpoint: sealed },
          { ...pods, name: 'again', endpoint: sealed },
        ],
      }),
    /backends\[1\] \(name "again"\): field "endpoint": duplicates the endpoint of backends\[0\]/,
  );
});

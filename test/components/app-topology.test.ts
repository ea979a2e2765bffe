/**
 * AppTopology under Pulumi mocks: a TopologyConfig built by `topologyConfig()`, endpoints sealed so the
 * operator can open them, no credential in plaintext anywhere.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as pulumi from '@pulumi/pulumi';
import { containsSecret, setupMocks, strings, valueOf, type Harness } from './harness.js';
import { keysFromSecretData, openEndpoint } from '../../middleware/src/operator/decrypt.js';
import { TopologyValidationError } from '../../middleware/src/topology/validate.js';

let h: Harness;
let m: typeof import('../../components/index.js');
const KEY = randomBytes(32);
const PASSWORD = 'appDbPassw0rd';
const ENDPOINT = `postgres://shop:${PASSWORD}@shop-rw.shop.svc:5432/shop`;

before(async () => {
  h = await setupMocks();
  m = await import('../../components/index.js');
});

const rule = (endpoint: pulumi.Input<string>) => ({ name: 'shop', endpoint, namespace: { namespace: 'shop' } });

test('encrypted: TopologyConfig with sealed endpoints the operator opens; spec not secret, no plaintext credential', async () => {
  const app = new m.AppTopology('shop', {
    namespace: 'shop',
    position: 10,
    rules: [rule(pulumi.secret(ENDPOINT)), { name: 'shop-crds', endpoint: 'sqlite:///var/lib/harikube/shop.db', customresource: { group: 'shop.example.com' } }],
    encryption: { key: pulumi.secret(KEY.toString('base64')), decryptSecret: 'harikube/topology-endpoint-keys' },
  });
  await h.settle();
  const cr = h.ofType('kubernetes:harikube.info/v1:TopologyConfig', h.one('harikube:index:AppTopology', 'shop').urn)[0]!;
  assert.equal(cr.parent, h.one('harikube:index:AppTopology', 'shop').urn);
  const { 'harikube.info/routing': routing, ...annotations } = cr.plain.metadata.annotations;
  assert.deepEqual({ ...cr.plain.metadata, annotations }, { name: 'shop', namespace: 'shop', labels: { 'app.kubernetes.io/managed-by': 'pulumi' }, annotations: { 'pulumi.com/waitFor': 'jsonpath={.status.deployStatus}=Active' } });
  assert.match(routing, /- name: shop\n[\s\S]*type: postgres\n\s+location: [^\s@]+:5432\//, 'readable routing: backend kind, host and database');
  assert.ok(!routing.includes('@') && !routing.includes('://'), 'no user, password or endpoint in the readable routing');
  assert.equal(cr.plain.spec.position, 10);
  assert.equal(cr.plain.spec.targetSecret, 'harikube/topology-config', 'default applied by the builder');
  assert.equal(cr.plain.spec.endpointDecryptSecret, 'harikube/topology-endpoint-keys');
  const keys = keysFromSecretData({ 'key-1': KEY }, 'test');
  assert.deepEqual(cr.plain.spec.backends.map((b: { endpoint: string }) => openEndpoint(b.endpoint, keys).plaintext), [ENDPOINT, 'sqlite:///var/lib/harikube/shop.db']);
  assert.equal(containsSecret(cr.inputs.spec), true, 'the sealed spec is a secret on the resource (no ciphertext diff in previews)');
  assert.equal(containsSecret(cr.inputs.metadata), false, 'the routing annotation stays reviewable');
  assert.ok(!strings(cr.plain).some((s) => s.includes(PASSWORD)));
  assert.equal(await pulumi.isSecret(app.spec), false);
});

test('sealing is deterministic (no diff on every run) and distinct endpoints get distinct nonces', () => {
  const a = m.sealEndpointDeterministic(ENDPOINT, KEY);
  assert.equal(m.sealEndpointDeterministic(ENDPOINT, KEY), a);
  const b = m.sealEndpointDeterministic(ENDPOINT.replace('shop-rw', 'shop2-rw'), KEY);
  assert.notEqual(Buffer.from(a, 'base64').subarray(0, 12).toString('hex'), Buffer.from(b, 'base64').subarray(0, 12).toString('hex'));
  assert.notEqual(m.sealEndpointDeterministic(ENDPOINT, randomBytes(32)), a);
});

test('without encryption the spec keeps its endpoints secret in Pulumi', async () => {
  const app = new m.AppTopology('plain', { namespace: 'plain', position: 20, rules: [{ ...rule(pulumi.secret(ENDPOINT)), name: 'plain' }] });
  await h.settle();
  const cr = h.ofType('kubernetes:harikube.info/v1:TopologyConfig', h.one('harikube:index:AppTopology', 'plain').urn)[0]!;
  assert.equal(containsSecret(cr.inputs.spec), true);
  assert.equal(await pulumi.isSecret(app.spec), true);
  assert.equal((await valueOf(app.spec)).backends[0]!.endpoint, ENDPOINT);
});

test('invalid rules fail before anything reaches the cluster, naming the rule', () => {
  assert.throws(
    () => m.buildAppTopologyConfig('x', 'ns', { position: 1, encryption: { decryptSecret: 'a/b' } }, [{ name: 'bad', endpoint: ENDPOINT, prefix: { prefix: 'pods' }, namespace: { namespace: 'a' } }], KEY),
    (e: unknown) => e instanceof TopologyValidationError && /name "bad"/.test(e.message),
  );
  assert.throws(() => m.buildAppTopologyConfig('x', 'ns', { position: 0 }, [{ name: 'a', endpoint: 'sqlite://./a.db', prefix: { prefix: 'pods' } }]), TopologyValidationError);
  assert.throws(() => m.decodeKey('c2hvcnQ='), /32 bytes/);
  const pre = m.buildAppTopologyConfig('x', 'ns', { position: 1, preEncrypted: { decryptSecret: 'harikube/keys' } }, [{ name: 'a', endpoint: m.sealEndpointDeterministic(ENDPOINT, KEY), prefix: { prefix: 'pods' } }]);
  assert.equal(pre.spec.endpointDecryptSecret, 'harikube/keys');
});

test('pulumi up waits for Active, through Migrating, as long as readyTimeout says; a bad readyTimeout fails the preview', async () => {
  new m.AppTopology('slow', { namespace: 'slow', position: 30, rules: [{ ...rule('sqlite:///var/lib/harikube/slow.db'), name: 'slow' }], readyTimeout: '45m' });
  new m.AppTopology('nowait', { namespace: 'nowait', position: 31, rules: [{ ...rule('sqlite:///var/lib/harikube/nowait.db'), name: 'nowait' }], waitForReady: false, readyTimeout: '45m' });
  await h.settle();
  const annotationsOf = (name: string) => h.ofType('kubernetes:harikube.info/v1:TopologyConfig', h.one('harikube:index:AppTopology', name).urn)[0]!.plain.metadata.annotations;
  assert.equal(annotationsOf('slow')['pulumi.com/waitFor'], 'jsonpath={.status.deployStatus}=Active');
  assert.equal(annotationsOf('slow')['pulumi.com/timeoutSeconds'], '2700');
  assert.equal(annotationsOf('nowait')['pulumi.com/waitFor'], undefined);
  assert.equal(annotationsOf('nowait')['pulumi.com/timeoutSeconds'], undefined);
  assert.throws(
    () => new m.AppTopology('bad', { namespace: 'bad', position: 32, rules: [{ ...rule('sqlite:///var/lib/harikube/bad.db'), name: 'bad' }], readyTimeout: 'an hour' }),
    /AppTopology bad: readyTimeout "an hour": "an hour" is not a duration/,
  );
});

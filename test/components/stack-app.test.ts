/**
 * The application example stack (stacks/app-example) under mocks, with the platform stack's outputs given to
 * its StackReference: a TopologyConfig whose sealed endpoints the operator opens with the platform key.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { runStack, REPO, type StackRun } from './stack-runner.js';
import { assertManifestsValid, assertSecrecy } from './stack-checks.js';
import { containsSecret } from './harness.js';
import { keysFromSecretData, openEndpoint } from '../../middleware/src/operator/decrypt.js';

const KEY = randomBytes(32);
let run: StackRun;
before(async () => {
  run = await runStack({
    projectFile: path.join(REPO, 'stacks/app-example/Pulumi.yaml'),
    stackFile: path.join(REPO, 'stacks/app-example/Pulumi.dev.yaml'),
    program: path.join(REPO, 'stacks/app-example/index.ts'),
    stack: 'dev',
    stackOutputs: {
      'organization/harikube/prod': {
        appTopologies: { encryptionKey: KEY.toString('base64'), decryptSecret: 'harikube/topology-endpoint-keys', targetSecret: 'harikube/topology-config' },
      },
    },
  });
});

test('app: a TopologyConfig from the typed rules, targeting the platform Secret, endpoints sealed with the platform key', () => {
  const [ref] = run.h.ofType('pulumi:pulumi:StackReference');
  assert.equal(ref!.plain.name, 'organization/harikube/prod');
  const [tc] = run.h.ofType('kubernetes:harikube.info/v1:TopologyConfig');
  const spec = tc!.plain.spec;
  assert.deepEqual([spec.position, spec.targetSecret, spec.endpointDecryptSecret], [10, 'harikube/topology-config', 'harikube/topology-endpoint-keys']);
  assert.equal(tc!.plain.metadata.namespace, 'shop-system', 'beside the routed namespace, not in it');
  assert.equal(tc!.plain.metadata.annotations['pulumi.com/waitFor'], 'jsonpath={.status.deployStatus}=Active');
  const keys = keysFromSecretData({ k: KEY }, 'platform key');
  const opened = spec.backends.map((b: { name: string; endpoint: string }) => [b.name, openEndpoint(b.endpoint, keys).plaintext]);
  const password = run.h.credentialOf('shop-db-owner-password');
  assert.deepEqual(opened, [
    ['shop', `postgres://harikube:${password}@shop-db-rw.shop-system.svc:5432/shop`],
    ['shop-orders', `postgres://harikube:${password}@shop-db-rw.shop-system.svc:5432/orders`],
  ]);
  assert.deepEqual(spec.backends[1].customresource, { group: 'shop.example.com' });
});

test('app: reviewers read each rule\'s backend by kind, host and database (never user or password) in the TopologyConfig', () => {
  const [tc] = run.h.ofType('kubernetes:harikube.info/v1:TopologyConfig');
  const routing = tc!.plain.metadata.annotations['harikube.info/routing'];
  assert.equal(
    routing,
    [
      '- name: shop',
      '  match:',
      '    namespace:',
      '      namespace: shop',
      '  backend:',
      '    type: postgres',
      '    location: shop-db-rw.shop-system.svc:5432/shop',
      '- name: shop-orders',
      '  match:',
      '    customresource:',
      '      group: shop.example.com',
      '  backend:',
      '    type: postgres',
      '    location: shop-db-rw.shop-system.svc:5432/orders',
      '',
    ].join('\n'),
  );
  assert.ok(!containsSecret(tc!.inputs.metadata), 'the annotation is not a secret (readable in diffs)');
});

test('app: the routed namespace and its objects wait for the TopologyConfig; the database is not in it', () => {
  const [tc] = run.h.ofType('kubernetes:harikube.info/v1:TopologyConfig');
  const settings = run.h.ofType('kubernetes:core/v1:ConfigMap').find((c) => c.plain.metadata.name === 'shop-settings')!;
  assert.ok(settings.dependencies.includes(tc!.urn));
  const shop = run.h.ofType('kubernetes:core/v1:Namespace').find((n) => n.plain.metadata.name === 'shop')!;
  assert.ok(shop.dependencies.includes(tc!.urn), 'the namespace the rules route is created after them');
  // nothing else is created in the routed namespace before the rules are live (the middleware would refuse them)
  const inShop = run.h.resources.filter((r) => r.plain?.metadata?.namespace === 'shop').map((r) => r.plain.metadata.name);
  assert.deepEqual(inShop, ['shop-settings']);
  const owner = run.h.ofType('kubernetes:core/v1:Secret').find((c) => c.plain.metadata.name === 'shop-db-owner')!;
  assert.equal(owner.plain.metadata.namespace, 'shop-system');
});

test('app: no credential outside Secrets; manifests validate', async () => {
  const password = run.h.credentialOf('shop-db-owner-password');
  assertSecrecy(run.h, [password]);
  const counts = await assertManifestsValid(run.h);
  assert.deepEqual(counts, { Namespace: 2, Secret: 1, ConfigMap: 1 });
});

/**
 * The application teams' workflow: a platform with the operator routes app TopologyConfigs (its root layer
 * reads the operator's Secret), a platform without one says so where the app team sees it (its preview), and
 * the combination that would silently ignore them is refused. Key rotation and the plan's SQLite replica check.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as pulumi from '@pulumi/pulumi';
import { setupMocks, valueOf, type Harness } from './harness.js';

let h: Harness;
let m: typeof import('../../components/index.js');
before(async () => {
  h = await setupMocks({
    stackOutputs: {
      'org/harikube/on': { appTopologies: { targetSecret: 'harikube/topology-config', decryptSecret: 'harikube/keys', encryptionKey: Buffer.alloc(32).toString('base64') } },
    },
  });
  m = await import('../../components/index.js');
});

const base = (extra: Record<string, unknown> = {}) => ({
  image: 'harikube:test',
  apiServer: { cidrs: ['10.0.0.0/8'] },
  layers: { root: { rules: [{ name: 'configmaps', backend: { sqlite: 'configmaps.db' }, prefix: { prefix: 'configmaps/' } }] } },
  ...extra,
});

test('with the operator the root layer reads the operator Secret by default, and publishes where app rules go', async () => {
  const p = new m.HariKubePlatform('on', base() as any);
  await h.settle();
  const settings = (await valueOf(p.appTopologies as any)) as any;
  assert.equal(settings.targetSecret, 'harikube/topology-config');
  assert.equal(settings.decryptSecret, 'harikube/topology-endpoint-keys');
  assert.equal(Buffer.from(settings.encryptionKey, 'base64').length, 32);
  const deployment = h.ofType('kubernetes:apps/v1:Deployment').find((d) => d.plain.metadata.name === 'harikube-root')!;
  const env = JSON.stringify(deployment.plain.spec.template.spec.containers[0]);
  assert.match(env, /secret:\/\/harikube\/topology-config/, 'the root layer reads the Secret the operator writes');
  const tcs = h.ofType('kubernetes:harikube.info/v1:TopologyConfig');
  assert.ok(tcs.some((t) => t.plain.spec.targetSecret === 'harikube/topology-config'), "the platform's own rules are a TopologyConfig");
});

test('the operator with a root layer on topologySource: pulumi is refused (app TopologyConfigs would be ignored)', () => {
  assert.throws(
    () => new m.HariKubePlatform('bad', base({ layers: { root: { topologySource: 'pulumi', rules: [] } } }) as any),
    /topologySource: pulumi while the TopologyConfig operator is on: applications' TopologyConfigs would be merged into a Secret no middleware reads/,
  );
});

test('without the operator the app stack fails its preview with the platform\'s reason', async () => {
  const p = new m.HariKubePlatform('off', base({ topologyOperator: { enabled: false }, namespace: 'hk-off' }) as any);
  assert.equal(p.targetSecret, undefined);
  assert.match(((await valueOf(p.appTopologies as any)) as any).unavailable, /runs without the TopologyConfig operator/);
  const published = await valueOf(p.appTopologies as any);
  assert.throws(() => m.checkAppTopologySettings('org/harikube/no-operator', published), /AppTopology: platform stack org\/harikube\/no-operator: platform namespace hk-off runs without the TopologyConfig operator/);
  assert.throws(() => m.checkAppTopologySettings('org/harikube/old', undefined), /publishes no appTopologies output/);
  // the app stack reads it through its StackReference
  const settings = m.appTopologySettings(new pulumi.StackReference('org/harikube/on'));
  assert.equal(await valueOf(settings.targetSecret as any), 'harikube/topology-config');
});

test('key rotation: every listed key is in the decrypt Secret, apps seal with the active one', async () => {
  const p = new m.HariKubePlatform('rot', base({ namespace: 'hk-rot', topologyOperator: { keys: ['key-1', 'key-2'], activeKey: 'key-2' } }) as any);
  await h.settle();
  const secret = h.ofType('kubernetes:core/v1:Secret').find((s) => s.plain.metadata.name === 'topology-endpoint-keys' && s.plain.metadata.namespace === 'hk-rot')!;
  assert.deepEqual(Object.keys(secret.plain.data).sort(), ['key-1', 'key-2']);
  const active = await valueOf(p.encryptionKey as any);
  assert.equal(secret.plain.data['key-2'], active, 'the active key is key-2');
  assert.notEqual(secret.plain.data['key-1'], active);
  assert.throws(() => new m.HariKubePlatform('rot2', base({ namespace: 'hk-rot2', topologyOperator: { keys: ['key-1'], activeKey: 'key-9' } }) as any), /activeKey "key-9" is not one of/);
});

test('per-team keys: the operator may read Secrets in the namespaces it is given, and only there', async () => {
  new m.HariKubePlatform('teams', base({ namespace: 'hk-teams', topologyOperator: { secretNamespaces: ['shop'] } }) as any);
  await h.settle();
  const roles = h.ofType('kubernetes:rbac.authorization.k8s.io/v1:Role').filter((r) => r.plain.metadata.name === 'harikube-topology-operator-secrets');
  assert.deepEqual(roles.map((r) => r.plain.metadata.namespace).filter((n) => ['hk-teams', 'shop'].includes(n)).sort(), ['hk-teams', 'shop']);
  const op = h.ofType('kubernetes:apps/v1:Deployment').find((d) => d.plain.metadata.namespace === 'hk-teams' && d.plain.metadata.name === 'harikube-topology-operator')!;
  assert.ok(op.plain.spec.template.spec.containers[0].args.includes('--secret-namespaces=hk-teams,shop'));
});

test('replicas: 2 with the default SQLite backend is refused by the plan, as the docs say', () => {
  assert.throws(
    () => m.planPlatform({ layers: { root: { replicas: 2, leaderElection: true, rules: [] } } } as any),
    /layer "root" has 2 replicas but a SQLite default backend/,
  );
  assert.throws(() => m.planPlatform({ layers: { root: { replicas: 2, leaderElection: true, defaultBackend: { sqlite: 'd.db' }, rules: [] } } } as any), /SQLite default backend/);
  assert.doesNotThrow(() => m.planPlatform({ postgres: { main: {} }, layers: { root: { replicas: 2, leaderElection: true, defaultBackend: { postgres: 'main' }, rules: [] } } } as any));
});

/**
 * The `dev` platform stack (stacks/platform/Pulumi.dev.yaml) run under mocks: one layer with a SQLite
 * default backend and ConfigMaps in one PostgreSQL, and the same application workflow as prod: the operator
 * (one small replica) merges the platform's rules and application teams' TopologyConfigs into the Secret the
 * root layer reads.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { runStack, REPO, type StackRun } from './stack-runner.js';
import { valueOf } from './harness.js';
import { assertEverythingParented, assertManifestsValid, assertSecrecy, countByType } from './stack-checks.js';
import { keysFromSecretData, openEndpoint } from '../../middleware/src/operator/decrypt.js';

let run: StackRun;
before(async () => {
  run = await runStack({ projectFile: path.join(REPO, 'Pulumi.yaml'), stackFile: path.join(REPO, 'stacks/platform/Pulumi.dev.yaml'), program: path.join(REPO, 'stacks/platform/index.ts'), stack: 'dev' });
});

test('dev: the expected resource graph', () => {
  const c = countByType(run.h);
  const pick = (...types: string[]) => Object.fromEntries(types.map((t) => [t, c[t] ?? 0]));
  assert.deepEqual(
    pick(
      'harikube:index:Middleware',
      'harikube:index:PostgresCluster',
      'harikube:index:MariaDbInstance',
      'harikube:index:EtcdCluster',
      'harikube:index:TopologyOperator',
      'kubernetes:helm.sh/v4:Chart',
      'kubernetes:apps/v1:Deployment',
      'kubernetes:postgresql.cnpg.io/v1:Cluster',
      'kubernetes:postgresql.cnpg.io/v1:Database',
      'kubernetes:core/v1:ConfigMap',
      'kubernetes:cert-manager.io/v1:Certificate',
      'kubernetes:harikube.info/v1:TopologyConfig',
    ),
    {
      'harikube:index:Middleware': 1,
      'harikube:index:PostgresCluster': 1,
      'harikube:index:MariaDbInstance': 0,
      'harikube:index:EtcdCluster': 0,
      'harikube:index:TopologyOperator': 1,
      'kubernetes:helm.sh/v4:Chart': 1,
      'kubernetes:apps/v1:Deployment': 2,
      'kubernetes:postgresql.cnpg.io/v1:Cluster': 1,
      'kubernetes:postgresql.cnpg.io/v1:Database': 1,
      'kubernetes:core/v1:ConfigMap': 0,
      'kubernetes:cert-manager.io/v1:Certificate': 0,
      'kubernetes:harikube.info/v1:TopologyConfig': 1,
    },
  );
  assertEverythingParented(run.h, 'harikube:index:HariKubePlatform');
  const [chart] = run.h.ofType('kubernetes:helm.sh/v4:Chart');
  assert.equal(chart!.plain.chart, 'cloudnative-pg');
  assert.ok(run.h.ofType('kubernetes:postgresql.cnpg.io/v1:Cluster')[0]!.dependencies.includes(chart!.urn), 'CRs after the operator chart');
});

test('dev: SQLite default on a PVC, configmaps routed to PostgreSQL through the operator, plain HTTP', async () => {
  const routing = (await valueOf((run.exports.routing as any).root)) as any;
  assert.deepEqual(routing.rules.map((r: any) => [r.name, r.match, r.backend.type, r.backend.target]), [['configmaps', { prefix: { prefix: 'configmaps' } }, 'postgres', 'postgres/main/configmaps']]);
  assert.deepEqual({ type: routing.default.type, target: routing.default.target }, { type: 'sqlite', target: 'sqlite/root/default.db' });
  const [deployment] = run.h.ofType('kubernetes:apps/v1:Deployment').filter((d) => d.plain.metadata.name === 'harikube-root');
  const c = deployment!.plain.spec.template.spec.containers[0];
  const env = Object.fromEntries(c.env.map((e: any) => [e.name, e.value]));
  assert.equal(env.TOPOLOGY_CONFIG, 'secret://harikube/topology-config', 'the root layer reads what the operator writes');
  // the platform's rule is a TopologyConfig whose sealed endpoint opens to the PostgreSQL database
  const [tc] = run.h.ofType('kubernetes:harikube.info/v1:TopologyConfig');
  const keySecret = run.h.ofType('kubernetes:core/v1:Secret').find((s) => s.plain.metadata.name === 'topology-endpoint-keys')!;
  const keys = keysFromSecretData({ 'key-1': Buffer.from(keySecret.plain.data['key-1'], 'base64') }, 'keys');
  const pgPassword = run.h.credentialOf('harikube-pg-main-owner-password');
  assert.equal(openEndpoint(tc!.plain.spec.backends[0].endpoint, keys).plaintext, `postgres://harikube:${pgPassword}@harikube-pg-main-rw.harikube.svc:5432/configmaps`);
  assert.match(tc!.plain.metadata.annotations['harikube.info/routing'], /location: harikube-pg-main-rw\.harikube\.svc:5432\/configmaps/);
  // the operator is cheap: one replica, small requests
  const op = run.h.ofType('kubernetes:apps/v1:Deployment').find((d) => d.plain.metadata.name === 'harikube-topology-operator')!;
  assert.equal(op.plain.spec.replicas, 1);
  assert.deepEqual(op.plain.spec.template.spec.containers[0].resources.requests, { cpu: '10m', memory: '64Mi' });
  // application stacks learn where their TopologyConfigs go
  const apps = (await valueOf(run.exports.appTopologies as any)) as any;
  assert.deepEqual([apps.targetSecret, apps.decryptSecret], ['harikube/topology-config', 'harikube/topology-endpoint-keys']);
  const [pvc] = run.h.ofType('kubernetes:core/v1:PersistentVolumeClaim');
  assert.equal(pvc!.plain.spec.resources.requests.storage, '2Gi');
  assert.equal(c.image, 'harikube:dev');
  assert.ok(!c.args.some((a: string) => a.startsWith('--server-cert-file')));
  assert.equal(await valueOf(run.exports.endpoint as any), 'http://harikube-root.harikube.svc:2379');
  const [np] = run.h.ofType('kubernetes:networking.k8s.io/v1:NetworkPolicy');
  assert.deepEqual(np!.plain.spec.ingress[0].from, [{ ipBlock: { cidr: '172.18.0.0/16' } }]);
});

test('dev: no credential outside Secrets; Secret data secret; workloads and ConfigMaps not secret', async () => {
  const pgPassword = run.h.credentialOf('harikube-pg-main-owner-password');
  assertSecrecy(run.h, [`harikube:${pgPassword}@`]);
});

test('dev: every rendered manifest validates against the Kubernetes schemas', async () => {
  const counts = await assertManifestsValid(run.h);
  assert.deepEqual(counts, {
    Namespace: 2, Secret: 3, PersistentVolumeClaim: 1, Service: 3, Deployment: 2, PodDisruptionBudget: 1, NetworkPolicy: 1,
    ServiceAccount: 1, Role: 2, RoleBinding: 2, ClusterRole: 6, ClusterRoleBinding: 2, CustomResourceDefinition: 1,
  });
});

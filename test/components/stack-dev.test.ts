/**
 * The `dev` platform stack (stacks/platform/Pulumi.dev.yaml) run under mocks: one layer with a SQLite
 * default backend and ConfigMaps in one PostgreSQL.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { runStack, REPO, type StackRun } from './stack-runner.js';
import { valueOf } from './harness.js';
import { assertEverythingParented, assertManifestsValid, assertSecrecy, countByType } from './stack-checks.js';

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
      'harikube:index:TopologyOperator': 0,
      'kubernetes:helm.sh/v4:Chart': 1,
      'kubernetes:apps/v1:Deployment': 1,
      'kubernetes:postgresql.cnpg.io/v1:Cluster': 1,
      'kubernetes:postgresql.cnpg.io/v1:Database': 1,
      'kubernetes:core/v1:ConfigMap': 1,
      'kubernetes:cert-manager.io/v1:Certificate': 0,
      'kubernetes:harikube.info/v1:TopologyConfig': 0,
    },
  );
  assertEverythingParented(run.h, 'harikube:index:HariKubePlatform');
  const [chart] = run.h.ofType('kubernetes:helm.sh/v4:Chart');
  assert.equal(chart!.plain.chart, 'cloudnative-pg');
  assert.ok(run.h.ofType('kubernetes:postgresql.cnpg.io/v1:Cluster')[0]!.dependencies.includes(chart!.urn), 'CRs after the operator chart');
});

test('dev: SQLite default on a PVC, configmaps routed to PostgreSQL, plain HTTP', async () => {
  const routing = parseYaml(run.h.ofType('kubernetes:core/v1:ConfigMap')[0]!.plain.data['routing.yaml']);
  assert.deepEqual(routing.rules.map((r: any) => [r.name, r.match, r.backend.type, r.backend.target]), [['configmaps', { prefix: { prefix: 'configmaps' } }, 'postgres', 'postgres/main/configmaps']]);
  assert.deepEqual({ type: routing.default.type, target: routing.default.target }, { type: 'sqlite', target: 'sqlite/root/default.db' });
  const [secret] = run.h.ofType('kubernetes:core/v1:Secret').filter((s) => s.plain.metadata.name === 'harikube-root-topology');
  assert.equal(secret!.plain.stringData['default-endpoint'], 'sqlite:///var/lib/harikube/default.db');
  const pgPassword = run.h.credentialOf('harikube-pg-main-owner-password');
  assert.match(secret!.plain.stringData['topology.yaml'], new RegExp(`endpoint: postgres://harikube:${pgPassword}@harikube-pg-main-rw\\.harikube\\.svc:5432/configmaps`));
  const [pvc] = run.h.ofType('kubernetes:core/v1:PersistentVolumeClaim');
  assert.equal(pvc!.plain.spec.resources.requests.storage, '2Gi');
  const [deployment] = run.h.ofType('kubernetes:apps/v1:Deployment');
  const c = deployment!.plain.spec.template.spec.containers[0];
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
  assert.deepEqual(counts, { Namespace: 2, Secret: 2, PersistentVolumeClaim: 1, Service: 2, ConfigMap: 1, Deployment: 1, PodDisruptionBudget: 1, NetworkPolicy: 1 });
});

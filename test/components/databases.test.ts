/**
 * DatabaseOperators, PostgresCluster, MariaDbInstance and EtcdCluster under Pulumi mocks: what they create,
 * ordering (CRDs/charts before custom resources), readiness gating, credentials kept in Secrets.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as pulumi from '@pulumi/pulumi';
import { containsSecret, setupMocks, strings, validateManifests, valueOf, type Harness } from './harness.js';

let h: Harness;
let m: typeof import('../../components/index.js');
before(async () => {
  h = await setupMocks();
  m = await import('../../components/index.js');
});

/** URN of a component instance. */
function urnOf(type: string, name: string): string {
  return h.one(type, name).urn;
}

test('DatabaseOperators: pinned charts in their namespaces; mariadb CRD chart strictly before the operator chart', async () => {
  const ops = new m.DatabaseOperators('ops', { cloudNativePg: { chart: { version: '0.27.0' } } });
  await h.settle();
  const root = urnOf('harikube:index:DatabaseOperators', 'ops');
  const charts = h.ofType('kubernetes:helm.sh/v4:Chart', root);
  assert.deepEqual(charts.map((c) => [c.name, c.plain.chart, c.plain.version, c.plain.namespace]).sort(), [
    ['ops-cloudnative-pg', 'cloudnative-pg', '0.27.0', 'cnpg-system'],
    ['ops-mariadb-operator', 'mariadb-operator', m.DEFAULT_CHARTS.mariadbOperator.version, 'mariadb-operator'],
    ['ops-mariadb-operator-crds', 'mariadb-operator-crds', m.DEFAULT_CHARTS.mariadbOperatorCrds.version, 'mariadb-operator'],
  ]);
  for (const c of charts) assert.equal(c.parent, root, `${c.name} is parented to the component`);
  const crds = charts.find((c) => c.name === 'ops-mariadb-operator-crds')!;
  const operator = charts.find((c) => c.name === 'ops-mariadb-operator')!;
  assert.ok(operator.dependencies.includes(crds.urn), 'operator chart depends on the CRD chart');
  assert.equal(operator.plain.values.crds.enabled, false, 'the operator chart must not also install the CRDs');
  const namespaces = h.ofType('kubernetes:core/v1:Namespace', root).map((n) => n.plain.metadata.name).sort();
  assert.deepEqual(namespaces, ['cnpg-system', 'mariadb-operator']);
  for (const c of charts) {
    const ns = h.ofType('kubernetes:core/v1:Namespace', root).find((n) => n.plain.metadata.name === c.plain.namespace)!;
    assert.ok(c.dependencies.includes(ns.urn), `${c.name} waits for its namespace`);
  }
  assert.equal(ops.ready.length, 3);
  assert.deepEqual(m.planDatabaseOperatorCharts({ mariadbOperator: { enabled: false } }).map((p) => p.name), ['cloudnative-pg']);
});

test('PostgresCluster: CNPG Cluster after the operators, basic-auth Secret, Ready gating, secret endpoints', async () => {
  const ops = new m.DatabaseOperators('pgops', { mariadbOperator: { enabled: false } });
  const pg = new m.PostgresCluster('main', { namespace: 'harikube', instances: 3, databases: ['configmaps'], operatorsReady: ops.ready });
  await h.settle();
  const root = urnOf('harikube:index:PostgresCluster', 'main');
  const [cluster] = h.ofType('kubernetes:postgresql.cnpg.io/v1:Cluster', root);
  assert.ok(cluster);
  assert.equal(cluster.parent, root);
  assert.equal(cluster.plain.spec.instances, 3);
  assert.equal(cluster.plain.metadata.annotations['pulumi.com/waitFor'], 'condition=Ready');
  assert.deepEqual(cluster.plain.spec.bootstrap.initdb, { database: 'harikube', owner: 'harikube', secret: { name: 'main-owner' } });
  const chart = h.one('kubernetes:helm.sh/v4:Chart', 'pgops-cloudnative-pg');
  assert.ok(cluster.dependencies.includes(chart.urn), 'the Cluster waits for the CNPG chart (CRDs, webhook)');

  const [secret] = h.ofType('kubernetes:core/v1:Secret', root);
  assert.equal(secret!.plain.type, 'kubernetes.io/basic-auth');
  assert.ok(containsSecret(secret!.inputs.stringData), 'password is a Pulumi secret in the Secret inputs');
  const password = h.credentials.find((c) => secret!.plain.stringData.password === c);
  assert.ok(password, 'the password comes from RandomPassword');
  assert.ok(cluster.dependencies.includes(secret!.urn));

  const [db] = h.ofType('kubernetes:postgresql.cnpg.io/v1:Database', root);
  assert.deepEqual(db!.plain.spec, { name: 'configmaps', owner: 'harikube', cluster: { name: 'main' }, ensure: 'present', databaseReclaimPolicy: 'retain' });
  assert.ok(db!.dependencies.includes(cluster.urn));

  assert.equal(await pulumi.isSecret(pg.endpoint), true);
  assert.equal(await valueOf(pg.endpoint), `postgres://harikube:${password}@main-rw.harikube.svc:5432/harikube`);
  assert.equal(await valueOf(pg.endpointFor('configmaps')), `postgres://harikube:${password}@main-rw.harikube.svc:5432/configmaps`);
  assert.throws(() => pg.endpointFor('nope'), /not declared/);
  // every consumer of the endpoint depends on the Cluster (and the Database), so it waits for Ready
  const resources = await (pg.endpointFor('configmaps') as any).allResources();
  assert.ok([...resources].includes(pg.cluster));
  // no credential in any non-Secret input
  for (const r of h.under(root).filter((r) => r.type !== 'kubernetes:core/v1:Secret' && !r.type.startsWith('random:'))) {
    assert.ok(!strings(r.plain).some((s) => s.includes(password!)), `${r.type} ${r.name} holds the password`);
  }
  assert.throws(() => new m.PostgresCluster('bad', { namespace: 'x', databases: ['Bad-Name'] }), /not a valid database/);
});

test('MariaDbInstance: MariaDB, Database/Grant per database, User with password Secret; root generated in-cluster', async () => {
  const maria = new m.MariaDbInstance('maria', { namespace: 'harikube', databases: ['secrets', 'team_a'], replicas: 3 });
  await h.settle();
  const root = urnOf('harikube:index:MariaDbInstance', 'maria');
  const byKind = (k: string) => h.ofType(`kubernetes:k8s.mariadb.com/v1alpha1:${k}`, root);
  const [mariadb] = byKind('MariaDB');
  assert.equal(mariadb!.plain.spec.rootPasswordSecretKeyRef.generate, true);
  assert.deepEqual(mariadb!.plain.spec.replication, { enabled: true });
  assert.equal(byKind('Database').length, 2);
  assert.equal(byKind('Grant').length, 2);
  const [user] = byKind('User');
  for (const r of [...byKind('Database'), ...byKind('Grant'), user!, mariadb!]) {
    assert.equal(r.plain.metadata.annotations['pulumi.com/waitFor'], 'condition=Ready', `${r.name} gates on Ready`);
    assert.equal(r.parent, root);
  }
  for (const g of byKind('Grant')) {
    const db = byKind('Database').find((d) => d.plain.spec.name === g.plain.spec.database)!;
    assert.ok(g.dependencies.includes(db.urn) && g.dependencies.includes(user!.urn), 'grant after its database and the user');
    assert.deepEqual(g.plain.spec.privileges, ['ALL PRIVILEGES']);
    assert.notEqual(g.plain.spec.database, '*', 'grants are scoped to one database');
  }
  const [secret] = h.ofType('kubernetes:core/v1:Secret', root);
  assert.ok(containsSecret(secret!.inputs.stringData));
  assert.equal(user!.plain.spec.passwordSecretKeyRef.name, secret!.plain.metadata.name);
  const password = secret!.plain.stringData.password as string;
  assert.equal(await valueOf(maria.endpointFor('team_a')), `mysql://harikube:${password}@tcp(maria-primary.harikube.svc:3306)/team_a`);
  assert.equal(await pulumi.isSecret(maria.endpoint), true);
  for (const r of h.under(root).filter((r) => r.type !== 'kubernetes:core/v1:Secret' && !r.type.startsWith('random:'))) {
    assert.ok(!strings(r.plain).some((s) => s.includes(password)), `${r.type} ${r.name} holds the password`);
  }
});

test('EtcdCluster: StatefulSet with headless peers, hardened pods, NetworkPolicy limited to middleware pods', async () => {
  const etcd = new m.EtcdCluster('pods', { namespace: 'harikube', replicas: 3 });
  await h.settle();
  const root = urnOf('harikube:index:EtcdCluster', 'pods');
  const [sts] = h.ofType('kubernetes:apps/v1:StatefulSet', root);
  const spec = sts!.plain.spec;
  assert.equal(spec.podManagementPolicy, 'Parallel');
  assert.equal(spec.serviceName, 'pods-peer');
  const args: string[] = spec.template.spec.containers[0].args;
  assert.ok(args.includes('--initial-cluster=pods-0=http://pods-0.pods-peer.harikube.svc:2380,pods-1=http://pods-1.pods-peer.harikube.svc:2380,pods-2=http://pods-2.pods-peer.harikube.svc:2380'));
  assert.ok(!args.some((a) => a.startsWith('--auto-compaction')), 'the middleware owns compaction');
  assert.equal(spec.template.spec.securityContext.runAsNonRoot, true);
  assert.equal(spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem, true);
  const services = h.ofType('kubernetes:core/v1:Service', root);
  const peer = services.find((s) => s.plain.metadata.name === 'pods-peer')!;
  assert.equal(peer.plain.spec.clusterIP, 'None');
  assert.equal(peer.plain.spec.publishNotReadyAddresses, true);
  const [np] = h.ofType('kubernetes:networking.k8s.io/v1:NetworkPolicy', root);
  assert.deepEqual(np!.plain.spec.ingress[0].from, [{ podSelector: { matchLabels: { 'app.kubernetes.io/part-of': 'harikube', 'app.kubernetes.io/component': 'middleware' } } }]);
  assert.deepEqual(np!.plain.spec.ingress[0].ports, [{ protocol: 'TCP', port: 2379 }]);
  assert.equal(await valueOf(etcd.endpoint), 'http://pods.harikube.svc:2379');
  assert.throws(() => m.etcdStatefulSetSpec('x', 'ns', { namespace: 'ns', replicas: 2 }), /must be odd/);
});

test('rendered database manifests validate against the Kubernetes schemas', async () => {
  await h.settle();
  const counts = await validateManifests(h.resources);
  assert.ok(counts.StatefulSet === 1 && counts.Secret! >= 2 && counts.Service === 2 && counts.NetworkPolicy === 1 && counts.PodDisruptionBudget === 1, JSON.stringify(counts));
});

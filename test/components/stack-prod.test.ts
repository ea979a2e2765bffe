/**
 * The `prod` platform stack (stacks/platform/Pulumi.prod.yaml) run under mocks: PostgreSQL + MariaDB + etcd,
 * the product's two-layer hierarchy (root sends kube-system to a second layer that splits pods / secrets /
 * configmaps / deployments across etcd / MariaDB / PostgreSQL / SQLite), TLS on, operator-managed root.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import * as pulumi from '@pulumi/pulumi';
import { runStack, REPO, type StackRun } from './stack-runner.js';
import { valueOf, type Recorded } from './harness.js';
import { assertEverythingParented, assertManifestsValid, assertSecrecy, countByType } from './stack-checks.js';
import { keysFromSecretData, openEndpoint } from '../../middleware/src/operator/decrypt.js';
import { validateTopology } from '../../middleware/src/topology/validate.js';

let run: StackRun;
before(async () => {
  run = await runStack({ projectFile: path.join(REPO, 'Pulumi.yaml'), stackFile: path.join(REPO, 'stacks/platform/Pulumi.prod.yaml'), program: path.join(REPO, 'stacks/platform/index.ts'), stack: 'prod' });
});

const deploymentOf = (layer: string): Recorded => run.h.ofType('kubernetes:apps/v1:Deployment').find((d) => d.plain.metadata.name === `harikube-${layer}`)!;
const envOf = (d: Recorded) => Object.fromEntries(d.plain.spec.template.spec.containers[0].env.map((e: any) => [e.name, e.value ?? e.valueFrom]));

test('prod: the expected resource graph', () => {
  const c = countByType(run.h);
  const expected: Record<string, number> = {
    'harikube:index:Middleware': 2,
    'harikube:index:PostgresCluster': 1,
    'harikube:index:MariaDbInstance': 1,
    'harikube:index:EtcdCluster': 1,
    'harikube:index:TopologyOperator': 1,
    'harikube:index:Topology': 1,
    'harikube:index:AppTopology': 1,
    'harikube:index:MiddlewareImage': 1,
    'docker-build:index:Image': 1,
    'kubernetes:helm.sh/v4:Chart': 3,
    'kubernetes:apps/v1:Deployment': 3,
    'kubernetes:apps/v1:StatefulSet': 1,
    'kubernetes:postgresql.cnpg.io/v1:Cluster': 1,
    'kubernetes:postgresql.cnpg.io/v1:Database': 1,
    'kubernetes:k8s.mariadb.com/v1alpha1:MariaDB': 1,
    'kubernetes:k8s.mariadb.com/v1alpha1:Database': 1,
    'kubernetes:k8s.mariadb.com/v1alpha1:Grant': 1,
    'kubernetes:k8s.mariadb.com/v1alpha1:User': 1,
    'kubernetes:cert-manager.io/v1:Issuer': 2,
    'kubernetes:cert-manager.io/v1:Certificate': 5,
    'kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition': 1,
    'kubernetes:harikube.info/v1:TopologyConfig': 1,
    'kubernetes:core/v1:ConfigMap': 1,
    'kubernetes:networking.k8s.io/v1:NetworkPolicy': 3,
    'kubernetes:policy/v1:PodDisruptionBudget': 3,
  };
  assert.deepEqual(Object.fromEntries(Object.keys(expected).map((t) => [t, c[t] ?? 0])), expected);
  assertEverythingParented(run.h, 'harikube:index:HariKubePlatform');
  // the operator's namespaced objects wait for the platform's namespace (forwarded dependsOn)
  const ns = run.h.ofType('kubernetes:core/v1:Namespace').find((n) => n.plain.metadata.name === 'harikube')!;
  const sa = run.h.ofType('kubernetes:core/v1:ServiceAccount')[0]!;
  assert.ok(sa.dependencies.includes(ns.urn));
});

test('prod: two layers; root takes its topology from the operator, kube-system from its compiled Secret', async () => {
  const root = deploymentOf('root');
  const lower = deploymentOf('kube-system');
  assert.equal(envOf(root).TOPOLOGY_CONFIG, 'secret://harikube/topology-config');
  assert.equal(envOf(lower).TOPOLOGY_CONFIG, 'file:///etc/harikube/topology/topology.yaml');
  assert.match(lower.plain.spec.template.metadata.annotations['harikube.info/restart-hash'], /^[0-9a-f]{64}$/);
  // the kube-system layer splits as in the product's hierarchical example
  const secret = run.h.ofType('kubernetes:core/v1:Secret').find((s) => s.plain.metadata.name === 'harikube-kube-system-topology')!;
  const doc = parseYaml(secret.plain.stringData['topology.yaml']);
  assert.equal(validateTopology(doc).ok, true, 'the compiled topology is accepted by the middleware validator');
  assert.deepEqual(doc.backends.map((b: any) => [b.name, b.prefix.prefix, b.endpoint.split(':')[0]]), [
    ['pods', 'pods', 'http'],
    ['secrets', 'secrets', 'mysql'],
    ['configmaps', 'configmaps', 'postgres'],
    ['deployments', 'deployments', 'sqlite'],
  ]);
  assert.equal(doc.backends[0].endpoint, 'http://harikube-etcd-pods.harikube.svc:2379');
  assert.match(doc.backends[1].endpoint, /@tcp\(harikube-mariadb-main-primary\.harikube\.svc:3306\)\/secrets$/);
  assert.match(doc.backends[2].endpoint, /@harikube-pg-main-rw\.harikube\.svc:5432\/configmaps$/);
  assert.equal(doc.backends[3].endpoint, 'sqlite:///var/lib/harikube/deployments.db');
  // the root's own rules are a TopologyConfig at position 1 whose sealed endpoint opens to the lower layer
  const [tc] = run.h.ofType('kubernetes:harikube.info/v1:TopologyConfig');
  assert.equal(tc!.plain.spec.position, 1);
  assert.equal(tc!.plain.spec.targetSecret, 'harikube/topology-config');
  assert.equal(tc!.plain.spec.endpointDecryptSecret, 'harikube/topology-endpoint-keys');
  const keySecret = run.h.ofType('kubernetes:core/v1:Secret').find((s) => s.plain.metadata.name === 'topology-endpoint-keys')!;
  const keys = keysFromSecretData({ 'key-1': Buffer.from(keySecret.plain.data['key-1'], 'base64') }, 'keys');
  assert.equal(openEndpoint(tc!.plain.spec.backends[0].endpoint, keys).plaintext, 'https://harikube-kube-system.harikube.svc:2379');
  assert.deepEqual(tc!.plain.spec.backends[0].namespace, { namespace: 'kube-system' });
  const crd = run.h.ofType('kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition')[0]!;
  assert.ok(tc!.dependencies.includes(crd.urn), 'the TopologyConfig waits for the CRD');
  // the root's default backend is PostgreSQL, from the middleware's own Secret
  const rootDefault = run.h.ofType('kubernetes:core/v1:Secret').find((s) => s.plain.metadata.name === 'harikube-root-default-endpoint')!;
  assert.match(rootDefault.plain.stringData['default-endpoint'], /^postgres:\/\/harikube:[^@]+@harikube-pg-main-rw\.harikube\.svc:5432\/harikube$/);
});

test('prod: the root (PostgreSQL default, no SQLite) rolls by lease hand-over; kube-system (SQLite on its volume) by Recreate', () => {
  const root = deploymentOf('root').plain;
  assert.deepEqual(root.spec.strategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
  assert.ok(root.spec.template.spec.containers[0].args.includes('--leader-elect'), 'leader election is on by default');
  assert.deepEqual(envOf(deploymentOf('root')).POD_TEMPLATE_HASH, { fieldRef: { fieldPath: "metadata.labels['pod-template-hash']" } });
  assert.deepEqual(root.spec.template.spec.volumes.find((v: any) => v.name === 'data').emptyDir, { sizeLimit: '1Gi' }, 'nothing of a leader-elected layer lives on its volume');
  const lower = deploymentOf('kube-system').plain;
  assert.deepEqual(lower.spec.strategy, { type: 'Recreate' }, 'deployments.db and default.db: one writer on a ReadWriteOnce volume');
  assert.ok(!lower.spec.template.spec.containers[0].args.includes('--leader-elect'));
  assert.equal(lower.spec.template.spec.volumes.find((v: any) => v.name === 'data').persistentVolumeClaim.claimName, 'harikube-kube-system-data');
});

test('prod: TLS on every layer; the root authenticates to kube-system with its own client certificate', async () => {
  for (const layer of ['root', 'kube-system']) {
    const args: string[] = deploymentOf(layer).plain.spec.template.spec.containers[0].args;
    assert.ok(args.includes('--server-ca-file=/etc/harikube/tls/ca.crt'), `${layer} requires client certificates`);
  }
  // the root compacts the layer below it, which must not compact by itself (README, "Guarantees across databases and layers")
  const compaction = (layer: string) => deploymentOf(layer).plain.spec.template.spec.containers[0].args.filter((a: string) => a.startsWith('--compact-interval'));
  assert.deepEqual([compaction('root'), compaction('kube-system')], [[], ['--compact-interval=0']]);
  const certs = run.h.ofType('kubernetes:cert-manager.io/v1:Certificate').map((c) => [c.plain.metadata.name, c.plain.spec.issuerRef.name]);
  assert.deepEqual(certs.sort(), [
    ['harikube-apiserver-client', 'harikube-ca'],
    ['harikube-ca', 'harikube-selfsigned'],
    ['harikube-kube-system-server', 'harikube-ca'],
    ['harikube-root-server', 'harikube-ca'],
    ['harikube-root-to-kube-system', 'harikube-ca'],
  ]);
  const pod = deploymentOf('root').plain.spec.template.spec;
  const vol = pod.volumes.find((v: any) => v.secret?.secretName === 'harikube-root-to-kube-system');
  assert.equal(pod.containers[0].volumeMounts.find((m: any) => m.name === vol.name).mountPath, '/etc/harikube/backend-tls/kube-system');
  const clientCert = run.h.ofType('kubernetes:cert-manager.io/v1:Certificate').find((c) => c.plain.metadata.name === 'harikube-root-to-kube-system')!;
  assert.ok(deploymentOf('root').dependencies.includes(clientCert.urn), 'the root pods wait for their client certificate');
  assert.equal(await valueOf(run.exports.endpoint as pulumi.Output<string>), 'https://harikube-root.harikube.svc:2379');
  // kube-system admits only the root layer; the root only the API server CIDR
  const policies = Object.fromEntries(run.h.ofType('kubernetes:networking.k8s.io/v1:NetworkPolicy').map((p) => [p.plain.metadata.name, p.plain.spec]));
  assert.deepEqual(policies['harikube-root']!.ingress[0].from, [{ ipBlock: { cidr: '10.0.0.0/24' } }]);
  assert.deepEqual(policies['harikube-kube-system']!.ingress[0].from[0].podSelector.matchLabels['app.kubernetes.io/instance'], 'root');
});

test('prod: image built and deployed by digest to both layers and the operator', async () => {
  const [img] = run.h.ofType('docker-build:index:Image');
  assert.deepEqual(img!.plain.tags, ['registry.example.com/platform/harikube:0.1.0']);
  const images = run.h.ofType('kubernetes:apps/v1:Deployment').map((d) => d.plain.spec.template.spec.containers[0].image);
  assert.equal(new Set(images).size, 1);
  assert.match(images[0], /^registry\.example\.com\/platform\/harikube@sha256:[0-9a-f]{64}$/);
});

test('prod: no credential outside Secrets; Secret data secret; workloads and ConfigMaps not secret; key output secret', async () => {
  const pg = run.h.credentialOf('harikube-pg-main-owner-password');
  const maria = run.h.credentialOf('harikube-mariadb-main-user-password');
  assertSecrecy(run.h, [`harikube:${pg}@`, `harikube:${maria}@`]);
  assert.equal(await pulumi.isSecret(run.exports.topologyEncryptionKey as pulumi.Output<string>), true);
  for (const layer of Object.values(run.exports.routing as Record<string, pulumi.Output<unknown>>)) assert.equal(await pulumi.isSecret(layer), false);
});

test('prod: every rendered manifest validates against the Kubernetes schemas', async () => {
  const counts = await assertManifestsValid(run.h);
  assert.deepEqual(counts, {
    Namespace: 3, ServiceAccount: 1, Role: 2, ClusterRole: 6, RoleBinding: 2, ClusterRoleBinding: 2, CustomResourceDefinition: 1,
    Service: 7, Secret: 5, PersistentVolumeClaim: 1, ConfigMap: 1, Deployment: 3, StatefulSet: 1, PodDisruptionBudget: 3, NetworkPolicy: 3,
  });
});

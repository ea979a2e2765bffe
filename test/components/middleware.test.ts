/**
 * Topology + Middleware under Pulumi mocks: two composed layers (the lower one's endpoint is a backend of the
 * upper one), TLS, NetworkPolicy, probes, hardening, and the secrecy split (Secret data secret; Deployment spec
 * and routing ConfigMap not secret and free of credentials).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import * as pulumi from '@pulumi/pulumi';
import { containsSecret, setupMocks, strings, validateManifests, valueOf, type Harness, type Recorded } from './harness.js';

let h: Harness;
let m: typeof import('../../components/index.js');
const PG_PASSWORD = 'pgPassw0rdXyz';
const PG = `postgres://harikube:${PG_PASSWORD}@pg-rw.harikube.svc:5432/configmaps`;
let lower: import('../../components/index.js').Middleware;
let upper: import('../../components/index.js').Middleware;
let upperTopology: import('../../components/index.js').Topology;

before(async () => {
  h = await setupMocks();
  m = await import('../../components/index.js');
  const lowerTopology = new m.Topology('lower-topology', {
    namespace: 'harikube',
    objectName: 'harikube-kube-system',
    rules: [{ name: 'configmaps', endpoint: pulumi.secret(PG), prefix: { prefix: 'configmaps' }, target: 'postgres/main/configmaps' }],
  });
  lower = new m.Middleware('kube-system', {
    namespace: 'harikube',
    image: 'registry.example.com/harikube@sha256:1111',
    topology: lowerTopology,
    tls: { issuerRef: { name: 'harikube-ca' } },
    parentLayers: [{ name: 'root' }],
  });
  upperTopology = new m.Topology('root-topology', {
    namespace: 'harikube',
    objectName: 'harikube-root',
    rules: [{ name: 'kube-system', endpoint: lower.endpoint, namespace: { namespace: 'kube-system' }, target: 'layer/kube-system', tlsSecretName: 'harikube-root-to-kube-system' }],
    defaultEndpoint: pulumi.secret(`postgres://harikube:${PG_PASSWORD}@pg-rw.harikube.svc:5432/harikube`),
  });
  upper = new m.Middleware('root', {
    namespace: 'harikube',
    image: 'registry.example.com/harikube@sha256:1111',
    topology: upperTopology,
    apiServer: { cidrs: ['10.0.0.0/24'], podSelector: { component: 'kube-apiserver' }, namespaceSelector: { 'kubernetes.io/metadata.name': 'kube-system' } },
    storage: { ephemeral: true },
  });
  await h.settle();
});

const componentUrn = (name: string) => h.one('harikube:index:Middleware', name).urn;
const child = (layer: string, type: string): Recorded => {
  const found = h.ofType(type, componentUrn(layer));
  assert.equal(found.length, 1, `${layer}: one ${type}`);
  return found[0]!;
};

test('each layer creates Deployment, Service, metrics Service, PDB, NetworkPolicy, data volume; children parented', () => {
  const types = (layer: string) => h.under(componentUrn(layer)).map((r) => r.type).sort();
  assert.deepEqual(types('kube-system'), [
    'kubernetes:apps/v1:Deployment',
    'kubernetes:cert-manager.io/v1:Certificate',
    'kubernetes:core/v1:PersistentVolumeClaim',
    'kubernetes:core/v1:Service',
    'kubernetes:core/v1:Service',
    'kubernetes:networking.k8s.io/v1:NetworkPolicy',
    'kubernetes:policy/v1:PodDisruptionBudget',
  ]);
  assert.deepEqual(types('root'), [
    'kubernetes:apps/v1:Deployment',
    'kubernetes:core/v1:Service',
    'kubernetes:core/v1:Service',
    'kubernetes:networking.k8s.io/v1:NetworkPolicy',
    'kubernetes:policy/v1:PodDisruptionBudget',
  ]);
  for (const r of h.under(componentUrn('root'))) assert.equal(r.parent, componentUrn('root'));
  const services = h.ofType('kubernetes:core/v1:Service', componentUrn('root')).map((s) => [s.plain.metadata.name, s.plain.spec.ports[0].port]);
  assert.deepEqual(services.sort(), [['harikube-root', 2379], ['harikube-root-metrics', 8080]]);
});

test('layers compose: the lower layer endpoint (https with TLS) is a backend of the upper layer topology', async () => {
  assert.equal(await valueOf(lower.endpoint), 'https://harikube-kube-system.harikube.svc:2379');
  assert.equal(await valueOf(upper.endpoint), 'http://harikube-root.harikube.svc:2379');
  const doc = parseYaml(await valueOf(upperTopology.documentYaml));
  assert.deepEqual(doc.backends[0], {
    name: 'kube-system',
    endpoint: 'https://harikube-kube-system.harikube.svc:2379',
    backendTLS: {
      caFile: '/etc/harikube/backend-tls/kube-system/ca.crt',
      certFile: '/etc/harikube/backend-tls/kube-system/tls.crt',
      keyFile: '/etc/harikube/backend-tls/kube-system/tls.key',
    },
    namespace: { namespace: 'kube-system' },
  });
  // the client certificate Secret for that rule is mounted where the rule's backendTLS points
  const pod = child('root', 'kubernetes:apps/v1:Deployment').plain.spec.template.spec;
  const vol = pod.volumes.find((v: any) => v.secret?.secretName === 'harikube-root-to-kube-system');
  const mount = pod.containers[0].volumeMounts.find((mt: any) => mt.name === vol.name);
  assert.equal(mount.mountPath, '/etc/harikube/backend-tls/kube-system');
});

test('Deployment: serve flags, default endpoint from a Secret, topology file, probes, hardening, Recreate for the single writer', () => {
  const d = child('kube-system', 'kubernetes:apps/v1:Deployment').plain;
  assert.equal(d.spec.replicas, 1);
  assert.deepEqual(d.spec.strategy, { type: 'Recreate' });
  const pod = d.spec.template.spec;
  const c = pod.containers[0];
  assert.deepEqual(c.args, [
    'serve',
    '--listen-address=0.0.0.0:2379',
    '--metrics-bind-address=:8080',
    '--log-format=json',
    '--server-cert-file=/etc/harikube/tls/tls.crt',
    '--server-key-file=/etc/harikube/tls/tls.key',
    '--server-ca-file=/etc/harikube/tls/ca.crt',
    '--compact-interval=0',
  ]);
  // only a lower layer leaves compaction to the layer above (README, "Guarantees across databases and layers")
  assert.ok(!child('root', 'kubernetes:apps/v1:Deployment').plain.spec.template.spec.containers[0].args.some((a: string) => a.startsWith('--compact-interval')));
  const env = Object.fromEntries(c.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
  assert.deepEqual(env.HARIKUBE_ENDPOINT, { secretKeyRef: { name: 'harikube-kube-system-topology', key: 'default-endpoint' } });
  assert.equal(env.TOPOLOGY_CONFIG, 'file:///etc/harikube/topology/topology.yaml');
  const metricsPort = c.ports.find((p: any) => p.name === 'metrics').containerPort;
  assert.equal(metricsPort, 8080);
  assert.deepEqual([c.livenessProbe.httpGet, c.readinessProbe.httpGet], [{ path: '/healthz', port: 'metrics' }, { path: '/readyz', port: 'metrics' }]);
  assert.deepEqual(c.securityContext, { runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, privileged: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } });
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(pod.automountServiceAccountToken, false, 'the middleware needs no Kubernetes API access');
  const mounts = Object.fromEntries(c.volumeMounts.map((v: any) => [v.mountPath, v.name]));
  assert.equal(mounts['/var/lib/harikube'], 'data', 'writable data dir for SQLite');
  assert.equal(mounts['/tmp'], 'tmp');
  assert.ok(mounts['/etc/harikube/tls'] && mounts['/etc/harikube/topology']);
  const data = pod.volumes.find((v: any) => v.name === 'data');
  assert.equal(data.persistentVolumeClaim.claimName, 'harikube-kube-system-data');
  const pvc = child('kube-system', 'kubernetes:core/v1:PersistentVolumeClaim').plain;
  assert.equal(pvc.metadata.annotations['pulumi.com/skipAwait'], 'true');
  assert.equal(h.ofType('kubernetes:apps/v1:Deployment', componentUrn('root'))[0]!.plain.spec.template.spec.volumes.find((v: any) => v.name === 'data').emptyDir.sizeLimit, '1Gi');
});

test('TLS: cert-manager Certificate for the Service names; the Deployment waits for it', () => {
  const cert = child('kube-system', 'kubernetes:cert-manager.io/v1:Certificate');
  assert.equal(cert.plain.spec.secretName, 'harikube-kube-system-server-tls');
  assert.ok(cert.plain.spec.dnsNames.includes('harikube-kube-system.harikube.svc'));
  assert.deepEqual(cert.plain.spec.issuerRef, { name: 'harikube-ca', kind: 'Issuer', group: 'cert-manager.io' });
  assert.equal(cert.plain.metadata.annotations['pulumi.com/waitFor'], 'condition=Ready');
  assert.ok(child('kube-system', 'kubernetes:apps/v1:Deployment').dependencies.includes(cert.urn));
});

test('secrecy: Deployment spec and routing ConfigMap are not secret and hold no credential; Secret data is secret', async () => {
  for (const layer of ['kube-system', 'root']) {
    const d = child(layer, 'kubernetes:apps/v1:Deployment');
    assert.equal(containsSecret(d.inputs), false, `${layer} Deployment inputs carry no secret`);
  }
  assert.equal(await pulumi.isSecret(upper.deployment.spec), false);
  assert.equal(await pulumi.isSecret(upperTopology.configMap.data), false);
  assert.equal(await pulumi.isSecret(upperTopology.secret.stringData), true);
  assert.equal(await pulumi.isSecret(upperTopology.hash), false);
  assert.equal(await pulumi.isSecret(upperTopology.restartHash), false);
  const secretTexts = [PG_PASSWORD, PG, ...h.credentials];
  for (const r of h.resources.filter((r) => r.type !== 'kubernetes:core/v1:Secret' && !r.type.startsWith('random:'))) {
    const texts = strings(r.plain);
    for (const s of secretTexts) assert.ok(!texts.some((t) => t.includes(s)), `${r.type} ${r.name} contains secret text`);
  }
  const topologySecret = h.one('kubernetes:core/v1:Secret', 'root-topology-topology');
  assert.ok(containsSecret(topologySecret.inputs.stringData));
  assert.match(topologySecret.plain.stringData['default-endpoint'], /^postgres:\/\/harikube:pgPassw0rdXyz@/);
});

test('rollouts: the pod template carries the keyed restart hash (default endpoint and TLS files, not the routing)', async () => {
  const restartHash = await valueOf(upperTopology.restartHash);
  assert.match(restartHash, /^[0-9a-f]{64}$/);
  const annotations = child('root', 'kubernetes:apps/v1:Deployment').plain.spec.template.metadata.annotations;
  assert.equal(annotations['harikube.info/restart-hash'], restartHash);
  assert.equal(annotations['harikube.info/topology-hash'], undefined, 'the routing is hot-reloaded, not rolled');
  const { topologyHash } = await import('../../middleware/src/topology/compile.js');
  const secretData = h.one('kubernetes:core/v1:Secret', 'root-topology-topology').plain.stringData;
  const key = h.credentialOf('root-topology-hash-key');
  const { 'topology.yaml': routing, ...readAtStart } = secretData;
  assert.ok(routing);
  assert.equal(restartHash, topologyHash(key, readAtStart), 'HMAC of what the middleware reads at start, under the random key');
  assert.equal(await valueOf(upperTopology.hash), topologyHash(key, secretData), 'hash: HMAC of everything it reads');
  assert.ok(!h.credentials.includes(restartHash));
});

test('NetworkPolicy: 2379 only from the API server (CIDR, selector) and the parent layer; 8080 for metrics', () => {
  const root = child('root', 'kubernetes:networking.k8s.io/v1:NetworkPolicy').plain.spec;
  assert.deepEqual(root.policyTypes, ['Ingress']);
  assert.deepEqual(root.podSelector, { matchLabels: { 'app.kubernetes.io/name': 'harikube-middleware', 'app.kubernetes.io/instance': 'root' } });
  assert.deepEqual(root.ingress[0], {
    from: [
      { ipBlock: { cidr: '10.0.0.0/24' } },
      { podSelector: { matchLabels: { component: 'kube-apiserver' } }, namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } } },
    ],
    ports: [{ protocol: 'TCP', port: 2379 }],
  });
  assert.deepEqual(root.ingress[1].ports, [{ protocol: 'TCP', port: 8080 }]);
  const lowerPolicy = child('kube-system', 'kubernetes:networking.k8s.io/v1:NetworkPolicy').plain.spec;
  assert.deepEqual(lowerPolicy.ingress[0].from, [
    { podSelector: { matchLabels: { 'app.kubernetes.io/name': 'harikube-middleware', 'app.kubernetes.io/instance': 'root' } }, namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'harikube' } } },
  ]);
  for (const rule of [...root.ingress, ...lowerPolicy.ingress]) assert.ok(rule.from.length > 0, 'no rule admits everyone');
  // no clients at all: 2379 stays closed instead of open to all
  const closed = m.middlewareNetworkPolicySpec({ a: 'b' }, {}, 'ns');
  assert.deepEqual((closed.ingress as any[]).map((r) => r.ports[0].port), [8080]);
});

test('PodDisruptionBudget does not block drains of the single writer', () => {
  const pdb = child('kube-system', 'kubernetes:policy/v1:PodDisruptionBudget').plain.spec;
  assert.equal(pdb.maxUnavailable, 1);
  assert.equal(pdb.unhealthyPodEvictionPolicy, 'AlwaysAllow');
});

test('plan rejects unsafe shapes: several writers without leader election, two topology sources', () => {
  const base = { namespace: 'x', image: 'i' };
  assert.throws(() => m.planMiddleware('a', { ...base, replicas: 2, topologySecretRef: 'harikube/topology-config' }), /needs leaderElection/);
  assert.throws(() => m.planMiddleware('a', { ...base }), /exactly one of topology/);
  assert.throws(() => m.planMiddleware('a', { ...base, topologySecretRef: 'bad' }), /not namespace\/name/);
  const ha = m.planMiddleware('a', { ...base, replicas: 3, leaderElection: true, topologySecretRef: 'harikube/topology-config' });
  assert.ok(m.middlewareArgs(ha).includes('--leader-elect'));
});

test('image built from middleware/Dockerfile with docker-build and deployed by digest', async () => {
  const mw = new m.Middleware('built', {
    namespace: 'harikube',
    image: { build: { repository: 'registry.example.com/harikube', tag: 'v1' } },
    topologySecretRef: 'harikube/topology-config',
    parentLayers: [{ name: 'root' }],
  });
  await h.settle();
  const img = h.ofType('docker-build:index:Image', componentUrn('built'))[0]!;
  assert.equal(img.parent, h.one('harikube:index:MiddlewareImage', 'built-image').urn);
  assert.match(img.plain.dockerfile.location, /\/middleware\/Dockerfile$/);
  assert.equal(img.plain.push, true);
  assert.deepEqual(img.plain.tags, ['registry.example.com/harikube:v1']);
  const image = await valueOf(mw.image);
  assert.match(image, /^registry\.example\.com\/harikube@sha256:[0-9a-f]{64}$/);
  const d = h.ofType('kubernetes:apps/v1:Deployment', componentUrn('built'))[0]!;
  assert.equal(d.plain.spec.template.spec.containers[0].image, image);
  assert.ok(d.dependencies.includes(img.urn), 'the Deployment waits for the build');
  // operator-managed topology: secret:// source, default endpoint in an own Secret
  const env = d.plain.spec.template.spec.containers[0].env;
  assert.equal(env.find((e: any) => e.name === 'TOPOLOGY_CONFIG').value, 'secret://harikube/topology-config');
  // the default endpoint is read at start: its keyed hash rolls the pods (the routing, from the Secret, does not)
  const { topologyHash } = await import('../../middleware/src/topology/compile.js');
  assert.equal(
    d.plain.spec.template.metadata.annotations['harikube.info/restart-hash'],
    topologyHash(h.credentialOf('built-restart-key'), { 'default-endpoint': 'sqlite:///var/lib/harikube/default.db' }),
  );
});

test('without @pulumi/docker-build a build fails with a message saying what to do', async () => {
  const { loadDockerBuild } = await import('../../components/middlewareImage.js');
  await assert.rejects(
    loadDockerBuild(() => Promise.reject(new Error("Cannot find package '@pulumi/docker-build'"))),
    /optional dependency @pulumi\/docker-build.*prebuilt image reference/s,
  );
  const real = await loadDockerBuild();
  assert.equal(typeof real.Image, 'function');
});

test('rendered layer manifests validate against the Kubernetes schemas', async () => {
  const counts = await validateManifests(h.resources);
  assert.ok(counts.Deployment === 3 && counts.Service === 6 && counts.NetworkPolicy === 3 && counts.PodDisruptionBudget === 3 && counts.ConfigMap === 2 && counts.Secret! >= 3 && counts.PersistentVolumeClaim === 2, JSON.stringify(counts));
});

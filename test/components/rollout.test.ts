/**
 * How a layer rolls (issue 15, "Never down"): a routing change leaves the Deployment exactly as it was (the
 * middleware hot-reloads the mounted topology), and the Deployment does not depend on the topology Secret
 * through its inputs, so a Secret the provider replaces cannot drag it into a replacement (the engine
 * replaces dependents only through their property dependencies). What the middleware reads only at start
 * (the default endpoint, TLS files) still rolls the pods.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as pulumi from '@pulumi/pulumi';
import { setupMocks, type Harness, type Recorded } from './harness.js';

let h: Harness;
const PASSWORD = 'rolloutPassw0rd';
const pg = (db: string) => `postgres://harikube:${PASSWORD}@pg-rw.harikube.svc:5432/${db}`;
const maria = (db: string) => `mysql://harikube:${PASSWORD}@tcp(maria.harikube.svc:3306)/${db}`;
const PEM = (n: string) => `-----BEGIN CERTIFICATE-----\n${n}\n-----END CERTIFICATE-----\n`;

interface Variant {
  teamA: string;
  defaultEndpoint?: string;
  ca?: string;
}

/** One declaration of the same layer (same names, so the same state and hash key), as one `pulumi up` would make. */
let declare: (v: Variant) => void;
const deployments = () => h.ofType('kubernetes:apps/v1:Deployment');
const secrets = () => h.ofType('kubernetes:core/v1:Secret').filter((s) => s.name === 'layer-topology-topology');

before(async () => {
  h = await setupMocks();
  const m = await import('../../components/index.js');
  declare = (v) => {
    const topology = new m.Topology('layer-topology', {
      namespace: 'harikube',
      objectName: 'harikube-layer',
      defaultEndpoint: v.defaultEndpoint,
      rules: [
        { name: 'team-a', endpoint: pulumi.secret(v.teamA), namespace: { namespace: 'team-a' } },
        { name: 'pods', endpoint: 'https://etcd-pods.harikube.svc:2379', prefix: { prefix: 'pods/' }, tlsMaterial: { ca: PEM(v.ca ?? 'ca-1') } },
      ],
    });
    new m.Middleware('layer', { namespace: 'harikube', image: 'registry.example.com/harikube@sha256:1111', topology, parentLayers: [{ name: 'root' }] });
  };
  declare({ teamA: maria('team_a') }); // 0: as deployed
  declare({ teamA: pg('team_a') }); // 1: team-a moved from MariaDB to PostgreSQL
  declare({ teamA: pg('team_a'), defaultEndpoint: pg('harikube') }); // 2: the default backend changed
  declare({ teamA: pg('team_a'), defaultEndpoint: pg('harikube'), ca: 'ca-2' }); // 3: a rule's CA rotated
  await h.settle();
  assert.equal(deployments().length, 4);
});

const annotationsOf = (d: Recorded) => d.plain.spec.template.metadata.annotations;

test('a routing change: the topology Secret changes, the Deployment\'s inputs do not (no update, no replace, no rollout)', () => {
  const [before, after] = deployments() as [Recorded, Recorded];
  const [secretBefore, secretAfter] = secrets() as [Recorded, Recorded];
  assert.notEqual(secretBefore.plain.stringData['topology.yaml'], secretAfter.plain.stringData['topology.yaml']);
  assert.deepEqual(after.inputs, before.inputs, 'the Deployment as the engine sees it is unchanged');
  assert.match(annotationsOf(before)['harikube.info/restart-hash'], /^[0-9a-f]{64}$/);
});

test('the Deployment depends on the topology Secret only for ordering, never through an input', () => {
  const secretUrn = secrets()[0]!.urn;
  const configMapUrn = h.ofType('kubernetes:core/v1:ConfigMap')[0]!.urn;
  for (const d of deployments()) {
    assert.ok(d.dependencies.includes(secretUrn), 'created after the Secret, deleted before it');
    const throughInputs = Object.values(d.propertyDependencies).flat();
    assert.ok(Object.keys(d.propertyDependencies).includes('spec'), 'property dependencies are recorded');
    assert.ok(!throughInputs.includes(secretUrn), 'no input of the Deployment comes from the Secret resource');
    assert.ok(!throughInputs.includes(configMapUrn));
  }
  const pod = deployments()[0]!.plain.spec.template.spec;
  assert.equal(pod.volumes.find((v: any) => v.name === 'topology').secret.secretName, 'harikube-layer-topology');
  const env = pod.containers[0].env.find((e: any) => e.name === 'HARIKUBE_ENDPOINT');
  assert.deepEqual(env.valueFrom.secretKeyRef, { name: 'harikube-layer-topology', key: 'default-endpoint' });
});

test('what the middleware reads only at start rolls the pods: the default endpoint, a rule\'s TLS material', () => {
  const [, routed, newDefault, rotated] = deployments() as [Recorded, Recorded, Recorded, Recorded];
  const hash = (d: Recorded) => annotationsOf(d)['harikube.info/restart-hash'];
  assert.notEqual(hash(newDefault), hash(routed), 'a new default endpoint ($HARIKUBE_ENDPOINT) rolls the pods');
  assert.notEqual(hash(rotated), hash(newDefault), 'new TLS material (read when a backend opens) rolls the pods');
  // and nothing else in the Deployment differs: the rollout is an in-place update of the pod template
  const withoutHash = (d: Recorded) => ({ ...d.plain, spec: { ...d.plain.spec, template: { ...d.plain.spec.template, metadata: { ...d.plain.spec.template.metadata, annotations: {} } } } });
  assert.deepEqual(withoutHash(newDefault), withoutHash(routed));
  assert.deepEqual(withoutHash(rotated), withoutHash(routed));
});

test('strategy: Recreate for a single writer without a lease; RollingUpdate gated on the one ready pod with leader election', async () => {
  const m = await import('../../components/index.js');
  const base = { namespace: 'x', image: 'i', topologySecretRef: 'harikube/topology-config' };
  const plan = (extra: object) => m.planMiddleware('a', { ...base, ...extra });
  assert.deepEqual(m.middlewareRollout(plan({})), { type: 'Recreate' });
  assert.deepEqual(m.middlewareRollout(plan({ leaderElection: true })), { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
  // standbys are never ready: with 3 replicas the one ready pod is the leader, and it must stay until a new one is ready
  assert.deepEqual(m.middlewareRollout(plan({ leaderElection: true, replicas: 3 })), { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 2 } });
  assert.throws(() => plan({ leaderElection: true, storage: { size: '1Gi' } }), /leaderElection runs two pods at once.*ReadWriteOnce volume attaches to one node/);
  assert.equal(plan({ leaderElection: true }).ephemeral, true);
});

test('a leader-elected layer: emptyDir data, the pod template hash for the hand-over, a budget that never blocks drains', async () => {
  const m = await import('../../components/index.js');
  new m.Middleware('ha', { namespace: 'harikube', image: 'registry.example.com/harikube@sha256:1111', topologySecretRef: 'harikube/topology-config', defaultEndpoint: pulumi.secret(pg('harikube')), leaderElection: true, replicas: 2 });
  await h.settle();
  const urn = h.one('harikube:index:Middleware', 'ha').urn;
  const d = h.ofType('kubernetes:apps/v1:Deployment', urn)[0]!.plain;
  assert.deepEqual(d.spec.strategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 1 } });
  const c = d.spec.template.spec.containers[0];
  assert.ok(c.args.includes('--leader-elect'));
  assert.deepEqual(c.env.find((e: any) => e.name === 'POD_TEMPLATE_HASH').valueFrom, { fieldRef: { fieldPath: "metadata.labels['pod-template-hash']" } });
  assert.ok(d.spec.template.spec.volumes.find((v: any) => v.name === 'data').emptyDir);
  assert.equal(h.ofType('kubernetes:core/v1:PersistentVolumeClaim', urn).length, 0);
  assert.equal(h.ofType('kubernetes:policy/v1:PodDisruptionBudget', urn)[0]!.plain.spec.maxUnavailable, 2, 'only the leader is ever ready: it must stay evictable');
  // the single writer keeps its PVC, Recreate and a budget of one
  const single = deployments()[0]!;
  assert.deepEqual(single.plain.spec.strategy, { type: 'Recreate' });
  assert.equal(single.plain.spec.template.spec.containers[0].env.find((e: any) => e.name === 'POD_TEMPLATE_HASH'), undefined);
});

test('an operator-managed layer: its default endpoint Secret is named, not depended on through inputs; a new endpoint rolls the pods', async () => {
  const m = await import('../../components/index.js');
  const layer = (endpoint: string) =>
    new m.Middleware('op', { namespace: 'harikube', image: 'registry.example.com/harikube@sha256:1111', topologySecretRef: 'harikube/topology-config', defaultEndpoint: pulumi.secret(endpoint) });
  layer(pg('harikube'));
  layer(pg('harikube2'));
  await h.settle();
  const urn = h.ofType('harikube:index:Middleware').find((r) => r.name === 'op')!.urn;
  const [before, after] = h.ofType('kubernetes:apps/v1:Deployment', urn) as [Recorded, Recorded];
  const secretUrn = h.ofType('kubernetes:core/v1:Secret', urn)[0]!.urn;
  for (const d of [before, after]) {
    assert.ok(d.dependencies.includes(secretUrn));
    assert.ok(!Object.values(d.propertyDependencies).flat().includes(secretUrn));
  }
  assert.notEqual(annotationsOf(after)['harikube.info/restart-hash'], annotationsOf(before)['harikube.info/restart-hash']);
  assert.ok(!JSON.stringify(before.plain).includes(PASSWORD));
});

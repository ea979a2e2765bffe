/**
 * HariKubePlatform with a hosted control plane: the operator, its CRD, the key Secret and the platform's
 * TopologyConfig go to the served cluster's provider; the middleware layers and databases stay on the
 * platform's.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setupMocks, type Harness } from './harness.js';

let h: Harness;
before(async () => {
  h = await setupMocks();
  const k8s = await import('@pulumi/kubernetes');
  const { HariKubePlatform } = await import('../../components/platform.js');
  const controlPlane = new k8s.Provider('tenant', { kubeconfig: 'tenant-kubeconfig' });
  new HariKubePlatform('hk', {
    image: 'registry.example.com/harikube@sha256:abc',
    apiServer: { podSelector: { app: 'kube-apiserver' }, namespaceSelector: { tenant: 'a' } },
    postgres: { main: {} },
    layers: { root: { topologySource: 'operator', defaultBackend: { postgres: 'main' }, rules: [{ name: 'configmaps', backend: { postgres: 'main', database: 'configmaps' }, prefix: { prefix: 'configmaps' } }] } },
    controlPlaneProvider: controlPlane,
  });
  await h.settle();
});

test('control-plane objects use the served cluster provider; the layer and databases do not', () => {
  const tenant = h.one('pulumi:providers:kubernetes', 'tenant').urn;
  const onTenant = (type: string) => h.ofType(type).every((r) => r.provider.startsWith(tenant));
  for (const type of ['kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition', 'kubernetes:apps/v1:Deployment', 'kubernetes:harikube.info/v1:TopologyConfig']) {
    const found = h.ofType(type);
    assert.ok(found.length > 0, type);
  }
  assert.ok(onTenant('kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition'));
  assert.ok(onTenant('kubernetes:harikube.info/v1:TopologyConfig'));
  const deployments = h.ofType('kubernetes:apps/v1:Deployment');
  const operator = deployments.find((d) => d.plain.metadata.name === 'harikube-topology-operator')!;
  const layer = deployments.find((d) => d.plain.metadata.name === 'harikube-root')!;
  assert.ok(operator.provider.startsWith(tenant));
  assert.ok(!layer.provider.startsWith(tenant));
  assert.ok(!h.ofType('kubernetes:postgresql.cnpg.io/v1:Cluster')[0]!.provider.startsWith(tenant));
  const keys = h.ofType('kubernetes:core/v1:Secret').find((s) => s.plain.metadata.name === 'topology-endpoint-keys')!;
  assert.ok(keys.provider.startsWith(tenant), 'the operator reads the decryption key in its own cluster');
  // the operator creates its namespace in the served cluster
  assert.ok(h.ofType('kubernetes:core/v1:Namespace').some((n) => n.plain.metadata.name === 'harikube' && n.provider.startsWith(tenant)));
});

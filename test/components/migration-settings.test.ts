/**
 * The online migration's rate limit as a typed setting: a document-level `migration.keysPerSecond`, validated
 * like the rest of the topology, compiled into the document and the reviewable routing table, shown by
 * `topology diff`; on a platform layer it reaches the middleware through the compiled topology (topologySource
 * pulumi) or as `--migration-rate` (operator: TopologyConfigs carry rules only).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { compileTopology } from '../../middleware/src/topology/compile.js';
import { diffTopologies, formatChange, loadTopologyView } from '../../middleware/src/topology/diff.js';
import { formatIssue, validateTopology } from '../../middleware/src/topology/validate.js';
import { setupMocks, type Harness } from './harness.js';

const rule = { name: 'configmaps', endpoint: 'sqlite:///var/lib/harikube/configmaps.db', prefix: { prefix: 'configmaps/' } };

test('migration.keysPerSecond: validated, compiled into the document and the routing table, shown by diff', () => {
  const bad = validateTopology({ backends: [rule], migration: { keysPerSecond: -5 } });
  assert.equal(bad.ok, false);
  assert.match(formatIssue((bad as { issues: any[] }).issues[0]), /^field "migration\.keysPerSecond": expected integer to be greater or equal to 0/);
  const unknown = validateTopology({ backends: [rule], migration: { keysPerSec: 5 } });
  assert.match(formatIssue((unknown as { issues: any[] }).issues[0]), /^field "migration\.keysPerSec": unknown field/);

  const c = compileTopology([rule], { mountPath: '/etc/harikube/topology', migration: { keysPerSecond: 300 } });
  assert.deepEqual(parseYaml(c.documentYaml).migration, { keysPerSecond: 300 });
  assert.equal(validateTopology(parseYaml(c.documentYaml)).ok, true);
  assert.deepEqual(c.routing.migration, { keysPerSecond: 300 }, 'a rate change shows in the routing ConfigMap diff');
  assert.equal(parseYaml(compileTopology([rule], { mountPath: '/m' }).documentYaml).migration, undefined);

  const before = loadTopologyView(compileTopology([rule], { mountPath: '/m' }).documentYaml, 'old');
  const after = loadTopologyView(c.documentYaml, 'new');
  assert.deepEqual(diffTopologies(before, after).map(formatChange), ['~ migration settings: (unset) -> {"keysPerSecond":300}']);
  assert.deepEqual(diffTopologies(loadTopologyView(compileTopology([rule], { mountPath: '/m' }).routingYaml, 'old'), loadTopologyView(c.routingYaml, 'new')).map(formatChange), [
    '~ migration settings: (unset) -> {"keysPerSecond":300}',
  ]);
});

let h: Harness;
before(async () => {
  h = await setupMocks();
});

test('platform layers: the compiled topology carries the rate; an operator-fed root gets --migration-rate', async () => {
  const { HariKubePlatform } = await import('../../components/platform.js');
  new HariKubePlatform('hk', {
    image: 'registry.example.com/harikube@sha256:abc',
    apiServer: { podSelector: { app: 'kube-apiserver' } },
    layers: {
      root: { topologySource: 'operator', migration: { keysPerSecond: 250 }, rules: [{ name: 'kube-system', backend: { layer: 'kube-system' }, namespace: { namespace: 'kube-system' } }] },
      'kube-system': { migration: { keysPerSecond: 0 }, rules: [{ name: 'pods', backend: { sqlite: 'pods.db' }, prefix: { prefix: 'pods/' } }] },
    },
  });
  await h.settle();
  const deployments = h.ofType('kubernetes:apps/v1:Deployment');
  const argsOf = (name: string) => deployments.find((d) => d.plain.metadata.name === name)!.plain.spec.template.spec.containers[0].args as string[];
  const root = argsOf('harikube-root');
  assert.equal(root[root.indexOf('--migration-rate') + 1], '250');
  assert.ok(!argsOf('harikube-kube-system').includes('--migration-rate'), 'the compiled topology says it instead');
  const routing = h.ofType('kubernetes:core/v1:ConfigMap').find((c) => c.plain.metadata.name === 'harikube-kube-system-routing')!;
  assert.deepEqual(parseYaml(routing.plain.data['routing.yaml']).migration, { keysPerSecond: 0 });
});

/**
 * TopologyOperator under Pulumi mocks: the CRD is exactly `topologyConfigCrd()`, RBAC is least privilege, the
 * Deployment is hardened and probed, and it waits for its permissions.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setupMocks, validateManifests, type Harness } from './harness.js';
import { topologyConfigCrd } from '../../middleware/src/topology/crd.js';

let h: Harness;
let m: typeof import('../../components/index.js');
let root: string;
before(async () => {
  h = await setupMocks();
  m = await import('../../components/index.js');
  new m.TopologyOperator('op', { image: 'registry.example.com/harikube@sha256:abc', namespace: 'harikube' });
  await h.settle();
  root = h.one('harikube:index:TopologyOperator', 'op').urn;
});

test('creates namespace, CRD, ServiceAccount, ClusterRoles(+Bindings), Roles(+Bindings), Deployment, metrics Service, all parented', () => {
  const children = h.under(root);
  const count = (type: string) => children.filter((r) => r.type === type).length;
  assert.equal(count('kubernetes:rbac.authorization.k8s.io/v1:ClusterRole'), 6, 'operator, metrics-auth, topologyconfig-admin/editor/viewer, metrics-reader');
  assert.equal(count('kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding'), 2);
  assert.equal(count('kubernetes:rbac.authorization.k8s.io/v1:Role'), 2, 'leader election, Secrets in harikube');
  assert.equal(count('kubernetes:rbac.authorization.k8s.io/v1:RoleBinding'), 2);
  for (const r of children) assert.equal(r.parent, root, `${r.name} parented to the component`);
});

test('the CRD is exactly topologyConfigCrd()', () => {
  const [crd] = h.ofType('kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition', root);
  assert.deepEqual(crd!.plain, topologyConfigCrd());
});

test('RBAC: exact verbs, no wildcards; leases only in its namespace; events where TopologyConfigs live', () => {
  const clusterRole = h.ofType('kubernetes:rbac.authorization.k8s.io/v1:ClusterRole', root).find((r) => r.plain.metadata.name === 'harikube-topology-operator');
  const rules = clusterRole!.plain.rules as Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>;
  const verbs = (group: string, resource: string) => rules.filter((r) => r.apiGroups.includes(group) && r.resources.includes(resource)).flatMap((r) => r.verbs).sort();
  assert.deepEqual(verbs('harikube.info', 'topologyconfigs'), ['get', 'list', 'patch', 'update', 'watch']);
  assert.deepEqual(verbs('harikube.info', 'topologyconfigs/status'), ['get', 'patch', 'update']);
  assert.deepEqual(verbs('harikube.info', 'topologyconfigs/finalizers'), ['update']);
  assert.equal(verbs('', 'secrets').length, 0, 'no Secret access cluster-wide');
  assert.deepEqual(verbs('', 'events'), ['create', 'patch']);
  assert.equal(verbs('coordination.k8s.io', 'leases').length, 0, 'no cluster-wide lease access');
  const roles = h.ofType('kubernetes:rbac.authorization.k8s.io/v1:Role', root);
  const role = roles.find((r) => r.plain.metadata.name.endsWith('leader-election'));
  assert.equal(role!.plain.metadata.namespace, 'harikube');
  assert.deepEqual(role!.plain.rules, [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }]);
  const secretRole = roles.find((r) => r.plain.metadata.name.endsWith('-secrets'))!;
  assert.equal(secretRole.plain.metadata.namespace, 'harikube', 'Secrets only in the namespaces the operator is given');
  assert.deepEqual(secretRole.plain.rules, [
    { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch'] },
    { apiGroups: [''], resources: ['secrets/finalizers'], verbs: ['update'] },
    { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] },
  ]);
  const all = [...rules, ...role!.plain.rules, ...secretRole.plain.rules];
  for (const r of all) {
    for (const f of [r.apiGroups, r.resources, r.verbs]) assert.ok(!f.includes('*'), `wildcard in ${JSON.stringify(r)}`);
  }
  for (const binding of [...h.ofType('kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding', root), ...h.ofType('kubernetes:rbac.authorization.k8s.io/v1:RoleBinding', root)]) {
    assert.deepEqual(binding.plain.subjects, [{ kind: 'ServiceAccount', name: 'harikube-topology-operator', namespace: 'harikube' }]);
  }
});

test('RBAC as operators ship it: metrics authn/authz, metrics-reader, topologyconfig admin/editor/viewer aggregated into admin/edit/view', () => {
  const byName = new Map(h.ofType('kubernetes:rbac.authorization.k8s.io/v1:ClusterRole', root).map((r) => [r.plain.metadata.name, r.plain]));
  assert.deepEqual(byName.get('harikube-topology-operator-metrics-auth').rules, [
    { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
    { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
  ]);
  const authBinding = h.ofType('kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding', root).find((b) => b.plain.roleRef.name === 'harikube-topology-operator-metrics-auth');
  assert.ok(authBinding, 'the operator may review /metrics callers');
  assert.deepEqual(byName.get('harikube-metrics-reader').rules, [{ nonResourceURLs: ['/metrics'], verbs: ['get'] }]);
  const tcVerbs = (n: string) => byName.get(n).rules.find((r: any) => r.resources[0] === 'topologyconfigs').verbs;
  assert.deepEqual(tcVerbs('harikube-topologyconfig-viewer'), ['get', 'list', 'watch']);
  assert.ok(tcVerbs('harikube-topologyconfig-editor').includes('create') && !tcVerbs('harikube-topologyconfig-editor').includes('deletecollection'));
  assert.ok(tcVerbs('harikube-topologyconfig-admin').includes('deletecollection'));
  for (const [n, to] of [['harikube-topologyconfig-admin', 'admin'], ['harikube-topologyconfig-editor', 'edit'], ['harikube-topologyconfig-viewer', 'view']]) {
    assert.equal(byName.get(n).metadata.labels[`rbac.authorization.k8s.io/aggregate-to-${to}`], 'true');
    assert.deepEqual(byName.get(n).rules.find((r: any) => r.resources[0] === 'topologyconfigs/status').verbs, ['get'], 'status is the operator\'s');
  }
});

test('Deployment: harikube operator --leader-elect, probes on 8081, restricted security context, waits for RBAC and CRD', () => {
  const [deployment] = h.ofType('kubernetes:apps/v1:Deployment', root);
  const pod = deployment!.plain.spec.template.spec;
  const c = pod.containers[0];
  assert.deepEqual(c.args.slice(0, 7), ['operator', '--leader-elect', '--health-probe-bind-address=:8081', '--metrics-bind-address=:8080', '--log-format=json', '--secret-namespaces=harikube', '--metrics-auth']);
  assert.equal(c.livenessProbe.httpGet.path, '/healthz');
  assert.equal(c.readinessProbe.httpGet.path, '/readyz');
  const healthPort = c.ports.find((p: { name: string }) => p.name === c.livenessProbe.httpGet.port);
  assert.equal(healthPort.containerPort, 8081);
  assert.deepEqual(c.securityContext, { runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, privileged: false, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } });
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
  assert.ok(c.resources.requests.cpu && c.resources.limits.memory);
  assert.equal(pod.serviceAccountName, 'harikube-topology-operator');
  const urns = (type: string) => h.ofType(type, root).map((r) => r.urn);
  for (const dep of [...urns('kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding'), ...urns('kubernetes:rbac.authorization.k8s.io/v1:RoleBinding'), ...urns('kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition')]) {
    assert.ok(deployment!.dependencies.includes(dep), `Deployment waits for ${dep}`);
  }
  const [svc] = h.ofType('kubernetes:core/v1:Service', root);
  assert.deepEqual(svc!.plain.spec.ports, [{ name: 'metrics', port: 8080, targetPort: 'metrics' }]);
});

test('operator manifests (CRD, RBAC, Deployment, Service) validate against the Kubernetes schemas', async () => {
  const counts = await validateManifests(h.under(root));
  assert.deepEqual(counts, { Namespace: 1, CustomResourceDefinition: 1, ServiceAccount: 1, ClusterRole: 6, ClusterRoleBinding: 2, Role: 2, RoleBinding: 2, Deployment: 1, Service: 1 });
});

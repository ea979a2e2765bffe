/**
 * Minimal CustomResourceDefinitions (ours, not the operators') for the third-party kinds our stacks create
 * when their operators' Helm charts cannot be installed (no chart repository is reachable here): the stacks
 * turn the chart path off with their own config (`harikube:databaseOperators: false`, as for a cluster where
 * the operators exist already) and the test installs these. Only what the API server needs to store and
 * serve the objects: group, kinds, names, a status subresource; the schemas accept any fields.
 *
 * Covered: CloudNativePG `Cluster` and `Database` (PostgresCluster). Not covered (no tested stack creates
 * them): mariadb-operator kinds, cert-manager `Certificate`/`Issuer`, Helm-installed operators.
 */
import { kube, type KubeAccess } from './cluster-standin.js';
import { waitUntil } from '../support/wait.js';

function crd(group: string, kind: string, plural: string, version = 'v1') {
  const open = { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${group}`, labels: { 'harikube.test/third-party-crd': 'true' } },
    spec: {
      group,
      scope: 'Namespaced',
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
      versions: [{ name: version, served: true, storage: true, subresources: { status: {} }, schema: { openAPIV3Schema: { type: 'object', properties: { spec: open, status: open } } } }],
    },
  };
}

export const CNPG_CRDS = [crd('postgresql.cnpg.io', 'Cluster', 'clusters'), crd('postgresql.cnpg.io', 'Database', 'databases')];

/** Creates the CRDs and waits until the API server serves them. */
export async function installCrds(access: KubeAccess, crds: ReturnType<typeof crd>[]): Promise<void> {
  for (const c of crds) {
    const r = await kube(access, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', c);
    if (r.status !== 201 && r.status !== 409) throw new Error(`creating CRD ${c.metadata.name}: ${r.status} ${JSON.stringify(r.body)}`);
  }
  for (const c of crds) {
    await waitUntil(`CRD ${c.metadata.name} to be served`, async () => {
      const r = await kube(access, 'GET', `/apis/${c.spec.group}/${c.spec.versions[0]!.name}/${c.spec.names.plural}`);
      return r.status === 200 ? true : undefined;
    }, { timeoutMs: 60_000, intervalMs: 250 });
  }
}

/**
 * How kube-apiserver lays out its objects in etcd, as far as routing needs to know.
 *
 * Object keys are `/registry/<resource>/<namespace>/<name>` for namespaced built-ins,
 * `/registry/<resource>/<name>` for cluster-scoped built-ins and
 * `/registry/<group>/<plural>/[<namespace>/]<name>` for custom resources and the resources of the aggregated
 * API servers (apiextensions, apiregistration): their first segment is an API group, which always has a dot.
 * `<resource>` is the storage prefix kube-apiserver was compiled with, usually the lower-case plural, with a
 * few historical exceptions (replicationcontrollers are stored as `controllers`, nodes as `minions`, ingresses
 * as `ingress`, services under `services/specs` and endpoints under `services/endpoints`). Besides objects
 * there are `/registry/masterleases/<ip>`, `/registry/ranges/<allocator>`, `/registry/health`, and keys outside
 * `/registry/` (`compact_rev_key`, etcdctl's `health`). Object names never contain `/`.
 *
 * Keys are bytes; this module reads them as UTF-8 (every real key is ASCII).
 */

/** Every object key starts with this. */
export const REGISTRY_PREFIX = '/registry/';

/** {@link REGISTRY_PREFIX} as bytes. */
export const REGISTRY_PREFIX_BYTES: Buffer = Buffer.from(REGISTRY_PREFIX, 'latin1');

/**
 * The namespaced built-in resources, by the name a namespace rule's `kinds` uses for them: the first key
 * segment Kubernetes stores them under, except `services` and `endpoints`, which share the `services` segment
 * (`/registry/services/specs/...`, `/registry/services/endpoints/...`). A namespace rule without `kinds` routes
 * exactly these. Kept to resources that are namespaced in every Kubernetes version that has them; listing one
 * that does not exist is harmless (its keys never appear), listing a cluster-scoped one would not be.
 */
export const NAMESPACED_RESOURCES: readonly string[] = Object.freeze([
  // core
  'pods',
  'configmaps',
  'secrets',
  'serviceaccounts',
  'controllers', // replicationcontrollers
  'services', // stored under services/specs
  'endpoints', // stored under services/endpoints
  'events', // also events.k8s.io (same storage)
  'limitranges',
  'resourcequotas',
  'persistentvolumeclaims',
  'podtemplates',
  // apps, batch, autoscaling
  'deployments',
  'replicasets',
  'statefulsets',
  'daemonsets',
  'controllerrevisions',
  'jobs',
  'cronjobs',
  'horizontalpodautoscalers',
  // coordination, discovery, networking, policy, rbac, storage
  'leases',
  'leasecandidates',
  'endpointslices',
  'networkpolicies',
  'ingress', // ingresses (networking.k8s.io and the old extensions group)
  'poddisruptionbudgets',
  'roles',
  'rolebindings',
  'csistoragecapacities',
  // resource (DRA), certificates, scheduling
  'resourceclaims',
  'resourceclaimtemplates',
  'podschedulingcontexts', // alpha until 1.31
  'podcertificaterequests',
  'workloads',
  'podgroups',
  'compositepodgroups',
]);

/**
 * Other spellings a user may write in `kinds`: the API plural where the storage segment differs, and the
 * storage paths of services and endpoints.
 */
const RESOURCE_ALIASES: Readonly<Record<string, string>> = Object.freeze({
  replicationcontrollers: 'controllers',
  ingresses: 'ingress',
  nodes: 'minions',
  'services/specs': 'services',
  'services/endpoints': 'endpoints',
});

/** The routing name of `kind` (a resource plural or storage name as written in a rule), aliases resolved. */
export function canonicalResource(kind: string): string {
  return Object.hasOwn(RESOURCE_ALIASES, kind) ? RESOURCE_ALIASES[kind]! : kind;
}

/**
 * The path under /registry/ that a built-in resource's objects live under, or undefined when `resource`
 * cannot be a built-in: built-ins never have a dot (that is an API group) and only services and endpoints
 * take more than one segment.
 */
export function storagePath(resource: string): string | undefined {
  const r = canonicalResource(resource);
  if (r === 'services') return 'services/specs';
  if (r === 'endpoints') return 'services/endpoints';
  if (r === '' || r.includes('.') || r.includes('/')) return undefined;
  return r;
}

/**
 * `/registry/<storage path>/<namespace>/`: the prefix of every object of a namespaced built-in resource in
 * one namespace; undefined when `resource` cannot be a built-in ({@link storagePath}).
 */
export function namespacedKeyPrefix(resource: string, namespace: string): string | undefined {
  const path = storagePath(resource);
  return path === undefined ? undefined : `${REGISTRY_PREFIX}${path}/${namespace}/`;
}

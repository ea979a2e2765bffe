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
 * Cluster-scoped built-ins, by their storage segment. Only used to classify keys ({@link parseKey}); routing
 * never needs it, because anything not namespaced is simply not matched by namespace rules.
 */
export const CLUSTER_RESOURCES: readonly string[] = Object.freeze([
  'namespaces',
  'minions', // nodes
  'persistentvolumes',
  'clusterroles',
  'clusterrolebindings',
  'priorityclasses',
  'storageclasses',
  'volumeattachments',
  'csidrivers',
  'csinodes',
  'volumeattributesclasses',
  'certificatesigningrequests',
  'clustertrustbundles',
  'mutatingwebhookconfigurations',
  'validatingwebhookconfigurations',
  'validatingadmissionpolicies',
  'validatingadmissionpolicybindings',
  'mutatingadmissionpolicies',
  'mutatingadmissionpolicybindings',
  'flowschemas',
  'prioritylevelconfigurations',
  'runtimeclasses',
  'ingressclasses',
  'ipaddresses',
  'servicecidrs',
  'deviceclasses',
  'resourceslices',
  'devicetaintrules',
  'resourcepoolstatusrequests',
  'storageversions',
  'storageversionmigrations',
  'podsecuritypolicy', // removed in 1.25; old clusters may still have the keys
]);

/** Keys under /registry/ that are not objects of an API resource. */
export const SPECIAL_SEGMENTS: readonly string[] = Object.freeze(['masterleases', 'ranges', 'health']);

/**
 * Other spellings a user may write in `kinds`: the API plural where the storage segment differs, and the
 * storage paths of services and endpoints.
 */
export const RESOURCE_ALIASES: Readonly<Record<string, string>> = Object.freeze({
  replicationcontrollers: 'controllers',
  ingresses: 'ingress',
  nodes: 'minions',
  'services/specs': 'services',
  'services/endpoints': 'endpoints',
});

const NAMESPACED = new Set(NAMESPACED_RESOURCES);
const CLUSTER = new Set(CLUSTER_RESOURCES);
const SPECIAL = new Set(SPECIAL_SEGMENTS);

/** The routing name of `kind` (a resource plural or storage name as written in a rule), aliases resolved. */
export function canonicalResource(kind: string): string {
  return Object.hasOwn(RESOURCE_ALIASES, kind) ? RESOURCE_ALIASES[kind]! : kind;
}

/** True for the curated namespaced built-ins ({@link NAMESPACED_RESOURCES}), aliases accepted. */
export function isNamespacedResource(kind: string): boolean {
  return NAMESPACED.has(canonicalResource(kind));
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

/** What kind of key a storage key is; see {@link ParsedKey}. */
export type KeyLayout = 'namespaced' | 'cluster' | 'group' | 'special' | 'unknown' | 'outside';

/** A storage key taken apart. Fields that do not apply to the layout are absent. */
export interface ParsedKey {
  /**
   * `namespaced` / `cluster`: a curated built-in ({@link NAMESPACED_RESOURCES}, {@link CLUSTER_RESOURCES});
   * `group`: first segment has a dot (custom resources, aggregated APIs);
   * `special`: masterleases, ranges, health; `unknown`: under /registry/ but none of these (a built-in newer
   * than the curated lists, or a malformed key); `outside`: not under /registry/ at all.
   */
  layout: KeyLayout;
  /** Routing name (`pods`, `services`, `endpoints`, `controllers`, `minions`, ...), or the plural of a group key. */
  resource?: string;
  /** The API group of a `group` key. */
  group?: string;
  /** Namespace segment, for keys that have one (namespaced built-ins; group keys with a namespace segment). */
  namespace?: string;
  /** The rest after the resource (and namespace): the object name, or the whole key for `outside` keys. */
  name?: string;
}

/** Splits `s` at the first `/`: [head, rest], rest undefined when there is no slash. */
function cut(s: string): [string, string | undefined] {
  const i = s.indexOf('/');
  return i < 0 ? [s, undefined] : [s.slice(0, i), s.slice(i + 1)];
}

/** `{namespace, name}` from `<ns>/<name>`; a lone segment is a namespace without a name (a list prefix). */
function namespaced(layout: KeyLayout, resource: string, rest: string | undefined): ParsedKey {
  if (rest === undefined) return { layout, resource };
  const [namespace, name] = cut(rest);
  return name === undefined ? { layout, resource, namespace } : { layout, resource, namespace, name };
}

/**
 * Classifies a storage key. Meant for diagnostics and tooling; routing uses precompiled byte matchers
 * (`rules.ts`) and never allocates this.
 */
export function parseKey(key: Buffer | string): ParsedKey {
  const s = typeof key === 'string' ? key : key.toString('utf8');
  if (!s.startsWith(REGISTRY_PREFIX)) return { layout: 'outside', name: s };
  const [first, rest] = cut(s.slice(REGISTRY_PREFIX.length));
  if (first.includes('.')) {
    if (rest === undefined) return { layout: 'group', group: first };
    const [resource, objectPath] = cut(rest);
    if (objectPath === undefined) return { layout: 'group', group: first, resource };
    const [a, b] = cut(objectPath);
    // Names have no slash, so a second segment means the first one is a namespace.
    return b === undefined
      ? { layout: 'group', group: first, resource, name: a }
      : { layout: 'group', group: first, resource, namespace: a, name: b };
  }
  if (first === 'services') {
    const [sub, objectPath] = rest === undefined ? ['', undefined] : cut(rest);
    if (sub === 'specs') return namespaced('namespaced', 'services', objectPath);
    if (sub === 'endpoints') return namespaced('namespaced', 'endpoints', objectPath);
    return rest === undefined ? { layout: 'unknown', resource: first } : { layout: 'unknown', resource: first, name: rest };
  }
  if (NAMESPACED.has(first)) return namespaced('namespaced', first, rest);
  const layout: KeyLayout = CLUSTER.has(first) ? 'cluster' : SPECIAL.has(first) ? 'special' : 'unknown';
  return rest === undefined ? { layout, resource: first } : { layout, resource: first, name: rest };
}

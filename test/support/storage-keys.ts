/**
 * Storage keys taken apart by what kube-apiserver stores under them (the layout of
 * middleware/src/router/key-layout.ts): a reference for tests of routing, and the cluster-scoped and special
 * segments the key generators use. The router itself never classifies keys this way.
 */
import { NAMESPACED_RESOURCES, REGISTRY_PREFIX } from '../../middleware/src/router/key-layout.js';

/**
 * Cluster-scoped built-ins, by their storage segment. Routing never needs them (anything not namespaced is
 * simply not matched by namespace rules); tests generate and classify keys with them.
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

const NAMESPACED = new Set(NAMESPACED_RESOURCES);
const CLUSTER = new Set(CLUSTER_RESOURCES);
const SPECIAL = new Set(SPECIAL_SEGMENTS);

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
 * Classifies a storage key, independently of the router's byte matchers (`rules.ts`), so tests can check
 * routing against it.
 */
export function parseStorageKey(key: Buffer | string): ParsedKey {
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
  // endpoints live under services/endpoints (above), never under a segment of their own
  if (NAMESPACED.has(first) && first !== 'endpoints') return namespaced('namespaced', first, rest);
  const layout: KeyLayout = CLUSTER.has(first) ? 'cluster' : SPECIAL.has(first) ? 'special' : 'unknown';
  return rest === undefined ? { layout, resource: first } : { layout, resource: first, name: rest };
}

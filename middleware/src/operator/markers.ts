/**
 * The finalizers, labels and annotations the operator puts on the objects it manages. They are part of the
 * operator's contract with users and tools (`kubectl get secret -l ...`), so they live in one place.
 */

/** Holds a TopologyConfig until its rules are removed from its target Secret. */
export const TOPOLOGYCONFIG_FINALIZER = 'harikube.info/topology-rules';
/** Holds a topology Secret while TopologyConfigs still target it (the middleware would lose its routing). */
export const SECRET_FINALIZER = 'harikube.info/topology-secret';

/** Labels on every Secret the operator writes. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'harikube-topology-operator';
export const TOPOLOGY_SECRET_LABEL = 'harikube.info/topology';
export const MANAGED_SECRET_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE},${TOPOLOGY_SECRET_LABEL}=true`;

/**
 * On a topology Secret: JSON list of the TopologyConfigs whose rules it holds (data key, resource, uid,
 * generation, position). Lets the operator keep a Failed resource's last good rules, and humans see sources.
 */
export const SOURCES_ANNOTATION = 'harikube.info/sources';

/** `component` of the Events the operator records. */
export const EVENT_SOURCE = 'harikube-topology-operator';

/** REST paths of the objects the operator reads and writes. */
import { TOPOLOGYCONFIG_GROUP, TOPOLOGYCONFIG_PLURAL, TOPOLOGYCONFIG_VERSION } from '../topology/crd.js';

const TC_BASE = `/apis/${TOPOLOGYCONFIG_GROUP}/${TOPOLOGYCONFIG_VERSION}`;

/** All TopologyConfigs, cluster-wide (list and watch). */
export const allTopologyConfigsPath = (): string => `${TC_BASE}/${TOPOLOGYCONFIG_PLURAL}`;

export const topologyConfigPath = (namespace: string, name: string, subresource?: 'status'): string =>
  `${TC_BASE}/namespaces/${encodeURIComponent(namespace)}/${TOPOLOGYCONFIG_PLURAL}/${encodeURIComponent(name)}${subresource ? `/${subresource}` : ''}`;

/** All Secrets cluster-wide (list and watch, without --secret-namespaces). */
export const allSecretsPath = (): string => '/api/v1/secrets';

export const secretsPath = (namespace: string): string => `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets`;

export const secretPath = (namespace: string, name: string): string => `${secretsPath(namespace)}/${encodeURIComponent(name)}`;

/** All ConfigMaps cluster-wide (list and watch; always used with a label selector). */
export const allConfigMapsPath = (): string => '/api/v1/configmaps';

export const configMapsPath = (namespace: string): string => `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps`;

export const eventsPath = (namespace: string): string => `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`;

export const leasesPath = (namespace: string): string =>
  `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`;

export const leasePath = (namespace: string, name: string): string => `${leasesPath(namespace)}/${encodeURIComponent(name)}`;

/** Splits `namespace/name` (a targetSecret or endpointDecryptSecret value). */
export function splitRef(ref: string): { namespace: string; name: string } {
  const slash = ref.indexOf('/');
  return { namespace: ref.slice(0, slash), name: ref.slice(slash + 1) };
}

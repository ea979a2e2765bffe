/**
 * The layout of a topology Secret: one definition for its two writers (topology/compile.ts, behind the Pulumi
 * package's `Topology`; operator/topology-merge.ts, the operator) and its reader
 * (topology/source/secret-source.ts).
 *
 * - Data keys ending in .yaml, .yml or .json hold topology documents. They apply in bytewise key order, their
 *   rules concatenated.
 * - Any other key is a file (TLS material), written under its key as file name to the TLS directory.
 * - The Pulumi compiler writes one document, `topology.yaml`, and each rule's inline TLS material as
 *   `<rule>.ca.crt`, `<rule>.tls.crt` and `<rule>.tls.key`.
 * - The operator writes one document per TopologyConfig, `<order>-<namespace>.<name>.yaml`, with a
 *   zero-padded order so that key order is rule order, headed by a comment naming the TopologyConfig.
 * - Every document is rendered by `renderTopologyDocument`.
 */
import { createHash } from 'node:crypto';
import { stringify as stringifyYaml } from 'yaml';
import type { BackendRule, TopologyDocument } from './schema.js';

/** What Kubernetes allows in a Secret data key, and so what may become a file name (or a TLS file's rule prefix). */
export const SECRET_DATA_KEY = /^[-._a-zA-Z0-9]+$/;

/** Keys that hold topology documents. */
const DOCUMENT_KEY = /\.(ya?ml|json)$/i;

/** Kubernetes limits a Secret data key to 253 characters. */
const MAX_KEY = 253;

/** True for a data key that holds a topology document (any other key is a file). */
export function isDocumentKey(key: string): boolean {
  return DOCUMENT_KEY.test(key);
}

/** True for a data key that can be written as a file of the TLS directory. */
export function isFileKey(key: string): boolean {
  return SECRET_DATA_KEY.test(key) && key !== '.' && key !== '..';
}

/** The order data keys apply in: bytewise, as Kubernetes lists them. */
export function dataKeyOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The entries of a Secret's data in the order they apply, split into documents and files. */
export function splitSecretData<V>(entries: Iterable<[string, V]>): { documents: [string, V][]; files: [string, V][] } {
  const sorted = [...entries].sort(([a], [b]) => dataKeyOrder(a, b));
  return { documents: sorted.filter(([k]) => isDocumentKey(k)), files: sorted.filter(([k]) => !isDocumentKey(k)) };
}

/** Data key of the document of a compiled (Pulumi) topology Secret. */
export const TOPOLOGY_DOCUMENT_KEY = 'topology.yaml';

/** PEM material for a rule's backend connection; written as files into the topology Secret. */
export interface RuleTlsMaterial {
  /** CA bundle (PEM) that verifies the backend's server certificate. */
  ca?: string;
  /** Client certificate (PEM) presented to the backend. */
  cert?: string;
  /** Private key (PEM) of the client certificate. */
  key?: string;
}

/** The files a rule's TLS material becomes in the topology Secret (`<rule>.ca.crt`, `.tls.crt`, `.tls.key`). */
export function tlsMaterialFiles(rule: string, material: RuleTlsMaterial | undefined): { field: 'caFile' | 'certFile' | 'keyFile'; key: string; pem: string }[] {
  const out: { field: 'caFile' | 'certFile' | 'keyFile'; key: string; pem: string }[] = [];
  if (material?.ca !== undefined) out.push({ field: 'caFile', key: `${rule}.ca.crt`, pem: material.ca });
  if (material?.cert !== undefined) out.push({ field: 'certFile', key: `${rule}.tls.crt`, pem: material.cert });
  if (material?.key !== undefined) out.push({ field: 'keyFile', key: `${rule}.tls.key`, pem: material.key });
  return out;
}

/**
 * Data key of the TopologyConfig at 0-based `index` of `count` in an operator-written Secret (the width grows
 * past 9999 so that order still sorts). Names too long for a key are cut and given a hash of
 * `namespace/name`, so keys stay unique.
 */
export function topologyConfigKey(index: number, count: number, namespace: string, name: string): string {
  const width = Math.max(4, String(count).length);
  const prefix = String(index + 1).padStart(width, '0');
  const key = `${prefix}-${namespace}.${name}.yaml`;
  if (key.length <= MAX_KEY) return key;
  const hash = createHash('sha256').update(`${namespace}/${name}`).digest('hex').slice(0, 10);
  const room = MAX_KEY - prefix.length - 1 - '.yaml'.length - hash.length - 1;
  return `${prefix}-${`${namespace}.${name}`.slice(0, room)}-${hash}.yaml`;
}

/**
 * A topology document as YAML, the one way every writer renders it: no line folding (an endpoint stays on
 * its line), two-space indent; `header` lines become comments above it, for humans reading the Secret.
 */
export function renderTopologyDocument(document: TopologyDocument, header: string[] = []): string {
  return header.map((line) => `# ${line}\n`).join('') + stringifyYaml(document, { lineWidth: 0, indent: 2 });
}

/** The document the operator stores for one TopologyConfig: its rules, headed by where they came from. */
export function topologyConfigDocument(from: { namespace: string; name: string; generation: number; position: number }, rules: BackendRule[]): string {
  return renderTopologyDocument({ backends: rules }, [
    `From TopologyConfig ${from.namespace}/${from.name} (generation ${from.generation}, ` +
      `position ${from.position}). Written by the HariKube operator; edit the TopologyConfig, not this Secret.`,
  ]);
}

/**
 * The layout of a topology Secret as the operator writes it and the middleware reads it: one data key per
 * TopologyConfig, named `<order>-<namespace>.<name>.yaml` with a zero-padded order prefix, so sorting the keys
 * gives the rule order; each value is a topology document (`backends: [...]`). The sources annotation records
 * which resource (uid, generation, position) each key came from.
 */
import { createHash } from 'node:crypto';
import { parse as parseYaml, stringify } from 'yaml';
import type { BackendRule } from '../topology/schema.js';
import { SOURCES_ANNOTATION } from './markers.js';

export interface SourceRecord {
  key: string;
  namespace: string;
  name: string;
  uid: string;
  generation: number;
  position: number;
}

/** What a Secret currently holds for one resource: its record and its rules (plaintext endpoints). */
export interface AppliedSource extends SourceRecord {
  rules: BackendRule[];
}

/** Kubernetes limits a Secret data key to 253 characters. */
const MAX_KEY = 253;

/**
 * Data key for the resource at 0-based `index` of `count` (width grows past 9999 so order still sorts).
 * Names too long for a key are cut and given a hash of `namespace/name`, so keys stay unique.
 */
export function dataKeyFor(index: number, count: number, namespace: string, name: string): string {
  const width = Math.max(4, String(count).length);
  const prefix = String(index + 1).padStart(width, '0');
  const key = `${prefix}-${namespace}.${name}.yaml`;
  if (key.length <= MAX_KEY) return key;
  const hash = createHash('sha256').update(`${namespace}/${name}`).digest('hex').slice(0, 10);
  const room = MAX_KEY - prefix.length - 1 - '.yaml'.length - hash.length - 1;
  return `${prefix}-${`${namespace}.${name}`.slice(0, room)}-${hash}.yaml`;
}

/** The YAML document stored under a resource's key; the header comment is for humans reading the Secret. */
export function renderDocument(source: SourceRecord, rules: BackendRule[]): string {
  const header =
    `# From TopologyConfig ${source.namespace}/${source.name} (generation ${source.generation}, ` +
    `position ${source.position}). Written by the HariKube operator; edit the TopologyConfig, not this Secret.\n`;
  return header + stringify({ backends: rules });
}

export function renderSourcesAnnotation(sources: SourceRecord[]): string {
  return JSON.stringify(
    sources.map(({ key, namespace, name, uid, generation, position }) => ({ key, namespace, name, uid, generation, position })),
  );
}

/**
 * What a managed Secret holds, per resource, from its annotation and data (base64 values as the API returns
 * them). Entries that cannot be read are skipped and reported through `warn`: they are then simply rewritten.
 */
export function readAppliedSources(
  annotations: Record<string, string> | undefined,
  data: Record<string, string> | undefined,
  warn: (message: string) => void,
): Map<string, AppliedSource> {
  const out = new Map<string, AppliedSource>();
  const text = annotations?.[SOURCES_ANNOTATION];
  if (!text) return out;
  let records: unknown;
  try {
    records = JSON.parse(text);
  } catch {
    warn(`annotation ${SOURCES_ANNOTATION} is not JSON; the previous rules of failed resources cannot be kept`);
    return out;
  }
  if (!Array.isArray(records)) return out;
  for (const r of records as Partial<SourceRecord>[]) {
    if (typeof r?.key !== 'string' || typeof r.namespace !== 'string' || typeof r.name !== 'string') continue;
    const value = data?.[r.key];
    if (value === undefined) continue;
    try {
      const doc = parseYaml(Buffer.from(value, 'base64').toString('utf8')) as { backends?: BackendRule[] } | null;
      out.set(`${r.namespace}/${r.name}`, {
        key: r.key,
        namespace: r.namespace,
        name: r.name,
        uid: String(r.uid ?? ''),
        generation: Number(r.generation ?? 0),
        position: Number(r.position ?? 0),
        rules: Array.isArray(doc?.backends) ? doc.backends : [],
      });
    } catch {
      warn(`data key ${r.key} is not a YAML topology document; it will be rewritten`);
    }
  }
  return out;
}

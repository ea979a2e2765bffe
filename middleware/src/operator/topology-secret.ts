/**
 * What the operator records in the topology Secret besides the documents: the sources annotation says which
 * resource (uid, generation, position) each data key came from, so the next reconcile knows what is applied.
 * The data keys and documents themselves follow topology/secret-layout.ts (`topologyConfigKey`,
 * `topologyConfigDocument`), the one definition the middleware reads them by.
 */
import { parse as parseYaml } from 'yaml';
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

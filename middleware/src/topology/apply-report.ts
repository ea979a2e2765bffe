/**
 * The apply report: how a middleware tells the operator (and humans) what it did with a topology Secret.
 *
 * The middleware IS the API server's storage, so it needs no Kubernetes client and no credentials to report:
 * it writes a ConfigMap straight into its own store, next to the Secret (`/registry/configmaps/<ns>/<name>`),
 * JSON-encoded (kube-apiserver decodes JSON from storage whatever its storage media type). The API server then
 * serves it like any ConfigMap (`kubectl get cm -l harikube.info/topology-report-for=topology-config`), and the
 * operator watches it. One report per Secret and middleware cluster (the store's cluster ID, shared by
 * leader-elected replicas, stable across restarts), so two middlewares never write the same object.
 *
 * The report names documents by a digest of their bytes (one per topology data key of the Secret), not by data
 * key: keys are renumbered when a resource is inserted above, the document text is not. A TopologyConfig is
 * routed when the digest of the document the operator wrote for it is among the `applied` ones.
 *
 * This file is the one definition of the format; the middleware writes it (server/topology-report.ts), the
 * operator reads it (operator/reconcile.ts).
 */
import { createHash } from 'node:crypto';

export const REPORT_API_VERSION = 'harikube.info/apply-report/v1';
/** Label on every report: its value is the (label-safe) name of the Secret reported on. */
export const REPORT_FOR_LABEL = 'harikube.info/topology-report-for';
export const REPORT_MANAGED_BY = 'harikube-middleware';
/** Data key of the ConfigMap holding the JSON report. */
export const REPORT_DATA_KEY = 'report.json';

/** What a middleware knows about one reading of the topology Secret. */
export interface SecretReadInfo {
  /** Store revision the Secret was read at. */
  revision: number;
  /** Digest of each topology document (data keys ending in .yaml/.yml/.json), in data key order. */
  documents: string[];
}

export interface ReportedApply {
  /** Store revision the Secret was read at. */
  revision: number;
  documents: string[];
  /** RFC 3339. */
  at: string;
}

export interface ReportedRefusal extends ReportedApply {
  /** The middleware's reason, as in its log (no credentials: endpoints are redacted). */
  reason: string;
  /** Rule names the reason is about (for attributing the refusal to a TopologyConfig). */
  rules: string[];
}

/**
 * Keys moving between databases (online migration) after the reading in `applied` put a routing change into
 * effect: the rules are routed already (writes go to their new backends), and the keys stored before are
 * still being moved. Rewritten as the migration progresses (about every 15 s) and removed when it is done.
 */
export interface ReportedMigration extends ReportedApply {
  /** e.g. `1200 of 5000 keys moved out of the default backend into rule "shop" (moving, 250 keys/s, about 16s left)`. */
  progress: string;
  /**
   * Rules whose keys are moving: sources, targets, and the former rule of a retired database. Absent while
   * the middleware is still counting what moves: then every document of the reading counts as migrating.
   */
  rules?: string[];
}

export interface ApplyReport {
  apiVersion: typeof REPORT_API_VERSION;
  /** The middleware cluster (store cluster ID). */
  middleware: string;
  /** `namespace/name` of the Secret. */
  secret: string;
  /** The state of the newest reading: Applied, Refused, or Migrating (applied, and keys are still moving). */
  state: 'Applied' | 'Refused' | 'Migrating';
  /** The Secret content in effect. */
  applied?: ReportedApply;
  /** Present while the newest reading is refused (the applied one stays in effect). */
  refused?: ReportedRefusal;
  /** Present while keys move for a routing change in effect (also when a newer reading was refused). */
  migrating?: ReportedMigration;
}

/** Digest of one topology document's bytes (hex, 128 bits). */
export function documentDigest(bytes: Buffer | string): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 32);
}

/** A label value for `name` (label values are at most 63 characters). */
export function reportLabelValue(secretName: string): string {
  if (secretName.length <= 63) return secretName;
  return `${secretName.slice(0, 50)}-${createHash('sha256').update(secretName).digest('hex').slice(0, 12)}`;
}

/** Name of the report ConfigMap of `secretName` written by middleware cluster `clusterId`. */
export function reportName(secretName: string, clusterId: string): string {
  const suffix = `-applied-${clusterId}`;
  const room = 253 - suffix.length;
  const base = secretName.length <= room ? secretName : `${secretName.slice(0, room - 13)}-${createHash('sha256').update(secretName).digest('hex').slice(0, 12)}`;
  return `${base}${suffix}`;
}

/** A UUID derived from `seed` (the report's uid must stay the same across rewrites). */
function stableUid(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * The ConfigMap as stored (JSON). A stored object needs apiVersion, kind and metadata name, namespace, uid and
 * creationTimestamp; resourceVersion is never stored (the API server takes it from the key's mod revision).
 */
export function reportObject(report: ApplyReport, namespace: string, secretName: string, createdAt: string): Record<string, unknown> {
  const name = reportName(secretName, report.middleware);
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name,
      namespace,
      uid: stableUid(`${namespace}/${name}`),
      creationTimestamp: createdAt,
      labels: { 'app.kubernetes.io/managed-by': REPORT_MANAGED_BY, [REPORT_FOR_LABEL]: reportLabelValue(secretName) },
      annotations: { 'harikube.info/description': `What HariKube middleware ${report.middleware} did with Secret ${namespace}/${secretName}; written by the middleware into its own store.` },
    },
    data: { [REPORT_DATA_KEY]: JSON.stringify(report, null, 2) },
  };
}

/** The report in a ConfigMap as the API returns it; undefined when it is not one. */
export function parseReport(configMap: { data?: Record<string, string> } | undefined): ApplyReport | undefined {
  const text = configMap?.data?.[REPORT_DATA_KEY];
  if (!text) return undefined;
  try {
    const r = JSON.parse(text) as ApplyReport;
    if (r?.apiVersion !== REPORT_API_VERSION || typeof r.middleware !== 'string') return undefined;
    return r;
  } catch {
    return undefined;
  }
}

/** Where one reporter stands on one document. */
export type DocumentState =
  | { state: 'applied' }
  | { state: 'refused'; reason: string; rules: string[] }
  | { state: 'migrating'; progress: string }
  | { state: 'unseen' };

/** Whether two readings name the same documents (digests), whatever their order. */
export function sameDocuments(a: readonly string[], b: readonly string[]): boolean {
  return [...a].sort().join(',') === [...b].sort().join(',');
}

/**
 * Where `report` stands on the document `digest`, whose rules are named `rules`: migrating while keys of those
 * rules move (or while the middleware still counts what moves), else applied once in effect.
 */
export function documentState(report: ApplyReport, digest: string, rules: readonly string[] = []): DocumentState {
  const m = report.migrating;
  if (m?.documents.includes(digest) && (m.rules === undefined || rules.some((r) => m.rules!.includes(r)))) {
    return { state: 'migrating', progress: m.progress };
  }
  // a document that is in effect is routed, whatever happens to a newer reading that also holds it
  if (report.applied?.documents.includes(digest)) return { state: 'applied' };
  if (report.refused?.documents.includes(digest)) return { state: 'refused', reason: report.refused.reason, rules: report.refused.rules };
  return { state: 'unseen' };
}

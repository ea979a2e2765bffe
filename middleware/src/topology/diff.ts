/**
 * Rule-level differences between two topologies, for reviewing a routing change before it ships.
 *
 * Either side may be a topology document (YAML/JSON), a compiled routing table (`routing.yaml`), a ConfigMap
 * or Secret carrying one of those, or a TopologyConfig resource. Rules are matched by name (a rule's name is its
 * backend's identity); the report says which rules were added, removed, moved (their order relative to the
 * rules both sides share changed), and which changed their match, their backend or their settings.
 * Endpoints are compared in memory but only ever printed redacted.
 */
import { parse as parseYaml } from 'yaml';
import { MATCH_FIELDS, type BackendRule } from './schema.js';
import { redactEndpoint } from './endpoint.js';
import { backendType, canonicalize, ROUTING_TABLE_KEY, type RoutingBackend } from './compile.js';
import { TOPOLOGY_DOCUMENT_KEY } from './secret-layout.js';

/** One rule as the diff sees it, whatever the source. */
export interface RuleView {
  /** 1-based. */
  position: number;
  name: string;
  /** Canonical JSON of the match block (`{"namespace":{...}}`), for comparison. */
  matchKey: string;
  /** Human form of the match block. */
  match: string;
  backend: RoutingBackend;
  /** The endpoint as written (documents only); never printed unredacted. */
  endpoint?: string;
  /** Canonical JSON of the other settings (TLS, pool, compaction), documents only. */
  settings?: Record<string, string>;
}

export interface TopologyView {
  /** What was read: `document`, `routing` or `topologyconfig`. */
  form: 'document' | 'routing' | 'topologyconfig';
  rules: RuleView[];
  default?: RoutingBackend;
  /** Canonical JSON of the document-level `migration` settings (absent: unset). */
  migration?: string;
}

export type RuleChange =
  | { kind: 'added'; name: string; position: number; match: string; backend: string }
  | { kind: 'removed'; name: string; position: number; match: string; backend: string }
  | { kind: 'moved'; name: string; from: number; to: number }
  | { kind: 'match'; name: string; position: number; from: string; to: string }
  | { kind: 'backend'; name: string; position: number; from: string; to: string }
  | { kind: 'credentials'; name: string; position: number }
  | { kind: 'settings'; name: string; position: number; field: string; from?: string; to?: string }
  | { kind: 'default'; from: string; to: string }
  | { kind: 'migration'; from?: string; to?: string };

export class TopologyInputError extends Error {
  constructor(source: string, problem: string) {
    super(`${source}: ${problem}`);
    this.name = 'TopologyInputError';
  }
}

const SETTINGS = ['backendTLS', 'connectionPool', 'compactInterval', 'compactIntervalJitter', 'compactTimeout', 'compactMinRetain', 'compactBatchSize'] as const;

function describeMatch(match: Record<string, unknown>): string {
  const field = MATCH_FIELDS.find((f) => match[f] !== undefined);
  if (!field) return '(no match)';
  const m = match[field] as Record<string, unknown>;
  switch (field) {
    case 'namespace':
      return `namespace ${m.namespace}${Array.isArray(m.kinds) && m.kinds.length ? ` (kinds ${(m.kinds as string[]).join(', ')})` : ''}`;
    case 'prefix':
      return `prefix /registry/${m.prefix}`;
    case 'customresource':
      return `custom resource ${m.kind ? `${m.kind}.` : ''}${m.group}${m.kind ? '' : ' (whole group)'}`;
    case 'regexp':
      return `regexp${m.prefix !== undefined ? ` prefix=${m.prefix}` : ''}${m.key !== undefined ? ` key=${m.key}` : ''}`;
  }
}

function matchOf(rule: Record<string, unknown>): { key: string; text: string } {
  const match: Record<string, unknown> = {};
  for (const f of MATCH_FIELDS) if (rule[f] !== undefined) match[f] = canonicalize(rule[f]);
  return { key: JSON.stringify(match), text: describeMatch(match) };
}

/** `postgres/main (postgres, tls)` style description of a backend. */
export function describeBackend(b: RoutingBackend | undefined, endpoint?: string): string {
  if (!b) return '(none)';
  const name = b.target ?? (endpoint !== undefined ? redactEndpoint(endpoint) : b.location);
  const extras = [b.type, b.tls ? 'tls' : undefined, b.target && b.location ? b.location : undefined].filter(Boolean).join(', ');
  return name ? `${name} (${extras})` : extras;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return !!v && typeof v === 'object' && !Array.isArray(v);
}

function documentView(doc: Record<string, unknown>, source: string, form: 'document' | 'topologyconfig'): TopologyView {
  const backends = doc.backends ?? [];
  if (!Array.isArray(backends)) throw new TopologyInputError(source, '"backends" is not a list');
  return {
    form,
    ...(doc.migration !== undefined ? { migration: JSON.stringify(canonicalize(doc.migration)) } : {}),
    rules: backends.map((raw, i) => {
      if (!isRecord(raw) || typeof raw.name !== 'string') throw new TopologyInputError(source, `backends[${i}] has no name`);
      const r = raw as unknown as BackendRule;
      const endpoint = typeof r.endpoint === 'string' ? r.endpoint.trim() : '';
      const settings: Record<string, string> = {};
      for (const f of SETTINGS) if (r[f] !== undefined) settings[f] = JSON.stringify(canonicalize(r[f]));
      const m = matchOf(raw);
      const tls = /^https:/i.test(endpoint) || !!(r.backendTLS && (r.backendTLS.caFile || r.backendTLS.certFile));
      return {
        position: i + 1,
        name: r.name,
        matchKey: m.key,
        match: m.text,
        backend: { type: form === 'topologyconfig' && !/^[a-z]+:\/\//i.test(endpoint) ? 'encrypted' : backendType(endpoint), ...(tls ? { tls: true } : {}) },
        endpoint,
        settings,
      };
    }),
  };
}

function routingView(table: Record<string, unknown>, source: string): TopologyView {
  const rules = table.rules ?? [];
  if (!Array.isArray(rules)) throw new TopologyInputError(source, '"rules" is not a list');
  return {
    form: 'routing',
    ...(table.migration !== undefined ? { migration: JSON.stringify(canonicalize(table.migration)) } : {}),
    rules: rules.map((raw, i) => {
      if (!isRecord(raw) || typeof raw.name !== 'string') throw new TopologyInputError(source, `rules[${i}] has no name`);
      const m = matchOf(isRecord(raw.match) ? raw.match : {});
      return {
        position: typeof raw.position === 'number' ? raw.position : i + 1,
        name: raw.name,
        matchKey: m.key,
        match: m.text,
        backend: (isRecord(raw.backend) ? raw.backend : { type: 'unknown' }) as unknown as RoutingBackend,
      };
    }),
    default: isRecord(table.default) ? (table.default as unknown as RoutingBackend) : undefined,
  };
}

/** Reads any supported form (see the module comment); `source` names it in errors. */
export function loadTopologyView(text: string, source: string): TopologyView {
  let parsed: unknown;
  try {
    parsed = text.trim() === '' ? { backends: [] } : parseYaml(text);
  } catch (e) {
    throw new TopologyInputError(source, `is not valid YAML: ${(e as Error).message}`);
  }
  return viewOf(parsed, source);
}

function viewOf(parsed: unknown, source: string): TopologyView {
  if (!isRecord(parsed)) throw new TopologyInputError(source, 'is not a mapping');
  if (parsed.kind === 'ConfigMap' || parsed.kind === 'Secret') {
    const data: Record<string, string> = {};
    if (isRecord(parsed.data)) {
      for (const [k, v] of Object.entries(parsed.data)) {
        if (typeof v === 'string') data[k] = parsed.kind === 'Secret' ? Buffer.from(v, 'base64').toString('utf8') : v;
      }
    }
    if (isRecord(parsed.stringData)) for (const [k, v] of Object.entries(parsed.stringData)) if (typeof v === 'string') data[k] = v;
    const inner = data[ROUTING_TABLE_KEY] ?? data[TOPOLOGY_DOCUMENT_KEY];
    const documents = Object.keys(data).filter((k) => /\.(ya?ml|json)$/i.test(k)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    if (inner === undefined && parsed.kind === 'Secret' && documents.length) {
      // the operator's topology Secret: one document per TopologyConfig, merged in data key order
      const backends: unknown[] = [];
      for (const k of documents) {
        let doc: unknown;
        try {
          doc = parseYaml(data[k]!);
        } catch (e) {
          throw new TopologyInputError(source, `data key "${k}" is not valid YAML: ${(e as Error).message}`);
        }
        if (isRecord(doc) && Array.isArray(doc.backends)) backends.push(...doc.backends);
      }
      return documentView({ backends }, `${source} (merged from ${documents.length} data keys)`, 'document');
    }
    if (inner === undefined) {
      throw new TopologyInputError(source, `${parsed.kind} has neither "${ROUTING_TABLE_KEY}" nor "${TOPOLOGY_DOCUMENT_KEY}"`);
    }
    return loadTopologyView(inner, `${source} (${data[ROUTING_TABLE_KEY] !== undefined ? ROUTING_TABLE_KEY : TOPOLOGY_DOCUMENT_KEY})`);
  }
  if (parsed.kind === 'TopologyConfig') {
    if (!isRecord(parsed.spec)) throw new TopologyInputError(source, 'TopologyConfig has no spec');
    return documentView(parsed.spec, source, 'topologyconfig');
  }
  if (parsed.rules !== undefined) return routingView(parsed, source);
  if ('backends' in parsed) return documentView(parsed, source, 'document');
  throw new TopologyInputError(source, 'is neither a topology document ("backends"), a routing table ("rules"), a ConfigMap/Secret holding one, nor a TopologyConfig');
}

/** Names of the longest common subsequence of `a` and `b` (rules that kept their relative order). */
function stableNames(a: string[], b: string[]): Set<string> {
  const n = a.length;
  const m = b.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const keep = new Set<string>();
  for (let i = 0, j = 0; i < n && j < m; ) {
    if (a[i] === b[j]) {
      keep.add(a[i]!);
      i++;
      j++;
    } else if (lcs[i + 1]![j]! >= lcs[i]![j + 1]!) i++;
    else j++;
  }
  return keep;
}

/** Compares two backends on the fields both sides know. */
function backendChanged(a: RuleView, b: RuleView): boolean {
  if (a.endpoint !== undefined && b.endpoint !== undefined) return redactEndpoint(a.endpoint) !== redactEndpoint(b.endpoint);
  if (a.backend.type !== b.backend.type) return true;
  if (a.backend.target !== undefined && b.backend.target !== undefined && a.backend.target !== b.backend.target) return true;
  if (a.backend.location !== undefined && b.backend.location !== undefined && a.backend.location !== b.backend.location) return true;
  if (a.backend.fingerprint !== undefined && b.backend.fingerprint !== undefined && a.backend.fingerprint !== b.backend.fingerprint) return true;
  return !!a.backend.tls !== !!b.backend.tls;
}

export function diffTopologies(before: TopologyView, after: TopologyView): RuleChange[] {
  const changes: RuleChange[] = [];
  const oldByName = new Map(before.rules.map((r) => [r.name, r]));
  const newByName = new Map(after.rules.map((r) => [r.name, r]));
  for (const r of before.rules) {
    if (!newByName.has(r.name)) {
      changes.push({ kind: 'removed', name: r.name, position: r.position, match: r.match, backend: describeBackend(r.backend, r.endpoint) });
    }
  }
  const common = (rules: RuleView[], other: Map<string, RuleView>) => rules.filter((r) => other.has(r.name)).map((r) => r.name);
  const stable = stableNames(common(before.rules, newByName), common(after.rules, oldByName));
  for (const r of after.rules) {
    const old = oldByName.get(r.name);
    if (!old) {
      changes.push({ kind: 'added', name: r.name, position: r.position, match: r.match, backend: describeBackend(r.backend, r.endpoint) });
      continue;
    }
    if (!stable.has(r.name)) changes.push({ kind: 'moved', name: r.name, from: old.position, to: r.position });
    if (old.matchKey !== r.matchKey) changes.push({ kind: 'match', name: r.name, position: r.position, from: old.match, to: r.match });
    if (backendChanged(old, r)) {
      changes.push({ kind: 'backend', name: r.name, position: r.position, from: describeBackend(old.backend, old.endpoint), to: describeBackend(r.backend, r.endpoint) });
    } else if (old.endpoint !== undefined && r.endpoint !== undefined && old.endpoint !== r.endpoint) {
      changes.push({ kind: 'credentials', name: r.name, position: r.position });
    }
    if (old.settings && r.settings) {
      for (const f of SETTINGS) {
        if (old.settings[f] !== r.settings[f]) {
          changes.push({ kind: 'settings', name: r.name, position: r.position, field: f, from: old.settings[f], to: r.settings[f] });
        }
      }
    }
  }
  if (before.default && after.default) {
    const a = describeBackend(before.default);
    const b = describeBackend(after.default);
    if (a !== b || before.default.fingerprint !== after.default.fingerprint) changes.push({ kind: 'default', from: a, to: b });
  }
  // a TopologyConfig has no document-level settings: compared between documents and routing tables
  if (before.form !== 'topologyconfig' && after.form !== 'topologyconfig' && before.migration !== after.migration) {
    changes.push({ kind: 'migration', from: before.migration, to: after.migration });
  }
  return changes;
}

/** One line per change; `+` added, `-` removed, `~` changed, `>` moved. */
export function formatChange(c: RuleChange): string {
  switch (c.kind) {
    case 'added':
      return `+ rule "${c.name}" added at #${c.position}: ${c.match} -> ${c.backend}`;
    case 'removed':
      return `- rule "${c.name}" removed (was #${c.position}: ${c.match} -> ${c.backend})`;
    case 'moved':
      return `> rule "${c.name}" moved from #${c.from} to #${c.to} (its order relative to other rules changed)`;
    case 'match':
      return `~ rule "${c.name}" (#${c.position}) match: ${c.from} -> ${c.to}`;
    case 'backend':
      return `~ rule "${c.name}" (#${c.position}) backend: ${c.from} -> ${c.to}`;
    case 'credentials':
      return `~ rule "${c.name}" (#${c.position}) endpoint credentials changed (values not shown)`;
    case 'settings':
      return `~ rule "${c.name}" (#${c.position}) ${c.field}: ${c.from ?? '(unset)'} -> ${c.to ?? '(unset)'}`;
    case 'default':
      return `~ default backend: ${c.from} -> ${c.to}`;
    case 'migration':
      return `~ migration settings: ${c.from ?? '(unset)'} -> ${c.to ?? '(unset)'}`;
  }
}

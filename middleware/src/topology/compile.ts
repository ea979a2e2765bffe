/**
 * Compiles typed rule declarations into what a middleware layer consumes, split by secrecy:
 *
 * - the full topology document as canonical YAML (endpoints and credentials included; goes into a Secret),
 * - TLS material of rules as files next to it (same Secret),
 * - a routing table: rule -> match -> which backend, with no endpoint text and no credentials, so it can live
 *   in a ConfigMap and be reviewed in `pulumi preview --diff` and with `harikube topology diff`,
 * - a keyed hash of everything the middleware reads, for the pod template annotation that triggers a rollout.
 *
 * Pure functions only: the Pulumi components call them inside `apply`, the tests call them directly.
 */
import { createHmac } from 'node:crypto';
import type { TSchema } from '@sinclair/typebox';
import { stringify as stringifyYaml } from 'yaml';
import { BackendRuleSchema, MATCH_FIELDS, MigrationSettingsSchema, type BackendRule, type BackendTLS, type MatchField, type MigrationSettings } from './schema.js';
import { TopologyValidationError, validateTopology, type TopologyIssue } from './validate.js';
import { parseEndpoint, redactEndpoint } from './endpoint.js';
import { renderTopologyDocument, SECRET_DATA_KEY, tlsMaterialFiles, TOPOLOGY_DOCUMENT_KEY, type RuleTlsMaterial } from './secret-layout.js';

/** A rule as declared: a `BackendRule`, plus optional TLS material and a non-secret label of its backend. */
export interface DeclaredRule extends BackendRule {
  /**
   * PEM material the compiler turns into files beside the document; the rule's `backendTLS` file fields are
   * set to their paths. Do not combine with `backendTLS.caFile/certFile/keyFile` for the same file.
   */
  tlsMaterial?: RuleTlsMaterial;
  /** Non-secret name of the backend (e.g. `postgres/main/configmaps`), shown in the routing table. */
  target?: string;
}

/** How the backend of a routing table row is described: never its endpoint. */
export interface RoutingBackend {
  /** Backend kind from the endpoint scheme: sqlite, postgres, mysql or etcd (etcd covers child middlewares). */
  type: string;
  /** Declared non-secret name of the backend, when the rule has one. */
  target?: string;
  /**
   * Keyed fingerprint of the endpoint with its password removed: changes when the rule points somewhere else,
   * not when only the password rotates; reveals nothing without the key.
   */
  fingerprint?: string;
  /** True when the connection uses TLS (https, or TLS files configured). */
  tls?: boolean;
  /** Where the data is, without user or password: `host:port/database`, a SQLite path, etcd hosts. */
  location?: string;
}

/** One row of the routing table. */
export interface RoutingRule {
  /** Rule (and backend) name. */
  name: string;
  /** 1-based position: the first matching rule wins. */
  position: number;
  /** The one match block of the rule, as written. */
  match: Partial<Pick<BackendRule, MatchField>>;
  backend: RoutingBackend;
}

/** The reviewable, credential-free view of a topology. */
export interface RoutingTable {
  rules: RoutingRule[];
  /** Where unmatched keys go: the middleware's `--endpoint`, when known to the compiler. */
  default?: RoutingBackend;
  /** The document's online migration settings, when set (a rate change shows in a routing diff). */
  migration?: MigrationSettings;
}

export interface CompileOptions {
  /** Directory the topology Secret is mounted at; TLS files' paths in `backendTLS` are made under it. */
  mountPath: string;
  /** Key for endpoint fingerprints; without it rows carry no fingerprint. */
  fingerprintKey?: string;
  /** The default backend's endpoint (`--endpoint`), described in the routing table as `default`. */
  defaultEndpoint?: string;
  /** Non-secret name of the default backend. */
  defaultTarget?: string;
  /** Document-level online migration settings (`migration.keysPerSecond` overrides `--migration-rate`). */
  migration?: MigrationSettings;
}

export interface CompiledTopology {
  /** Canonical YAML of the full document, as the middleware reads it (secret: holds endpoints). */
  documentYaml: string;
  /** Secret data: `topology.yaml` and one file per piece of TLS material (secret). */
  secretData: Record<string, string>;
  /** Credential-free routing table. */
  routing: RoutingTable;
  /** `routing` as YAML, for the ConfigMap. */
  routingYaml: string;
}

/** Data key of the routing table inside the routing ConfigMap. */
export const ROUTING_TABLE_KEY = 'routing.yaml';

/**
 * Orders the keys of `value` as `schema` declares its properties, recursively (arrays keep their order), so
 * the same declaration always compiles to the same bytes and diffs stay minimal.
 */
export function canonicalize(value: unknown, schema?: TSchema): unknown {
  if (Array.isArray(value)) {
    const items = (schema as { items?: TSchema } | undefined)?.items;
    return value.map((v) => canonicalize(v, items));
  }
  if (!value || typeof value !== 'object') return value;
  const props = ((schema as { properties?: Record<string, TSchema> } | undefined)?.properties ?? {}) as Record<string, TSchema>;
  const known = Object.keys(props);
  const rest = Object.keys(value).filter((k) => !known.includes(k)).sort();
  const out: Record<string, unknown> = {};
  for (const k of [...known, ...rest]) {
    const v = (value as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = canonicalize(v, props[k]);
  }
  return out;
}

function toYaml(value: unknown): string {
  return stringifyYaml(value, { lineWidth: 0, indent: 2 });
}

/** `sha256` HMAC of `text` under `key`, hex. */
export function keyedHash(key: string, text: string): string {
  return createHmac('sha256', key).update(text).digest('hex');
}

/** Kind of backend behind an endpoint, by scheme; `unknown` if it does not parse. */
export function backendType(endpoint: string): string {
  try {
    return parseEndpoint(endpoint).kind;
  } catch {
    return 'unknown';
  }
}

/** Where an endpoint's data lives, for reviewers: `host:port/database`, the SQLite path or the etcd hosts; never user or password. */
export function backendLocation(endpoint: string): string | undefined {
  try {
    const e = parseEndpoint(endpoint.trim());
    if (e.kind === 'sqlite') return e.path;
    if (e.kind === 'etcd') return e.hosts.join(',');
    return `${e.host}:${e.port}/${e.database}`;
  } catch {
    return undefined;
  }
}

/** Short keyed fingerprint of an endpoint, insensitive to its password. */
export function endpointFingerprint(key: string, endpoint: string): string {
  return keyedHash(key, redactEndpoint(endpoint.trim())).slice(0, 12);
}

function describeBackend(endpoint: string, opts: { key?: string; target?: string; tls?: boolean }): RoutingBackend {
  const b: RoutingBackend = { type: backendType(endpoint) };
  if (opts.target) b.target = opts.target;
  const location = backendLocation(endpoint);
  if (location) b.location = location;
  if (opts.key) b.fingerprint = endpointFingerprint(opts.key, endpoint);
  const tls = opts.tls || /^https:/i.test(endpoint.trim());
  if (tls) b.tls = true;
  return b;
}

/**
 * Compiles declared rules. Throws `TopologyValidationError` (the middleware's own validator, plus the checks
 * the compiler adds) naming the rule and field when the result would be rejected.
 */
export function compileTopology(rules: DeclaredRule[], options: CompileOptions): CompiledTopology {
  const mount = options.mountPath.replace(/\/+$/, '');
  const issues: TopologyIssue[] = [];
  const files: Record<string, string> = {};
  const backends: BackendRule[] = rules.map((declared, index) => {
    const { tlsMaterial, target: _target, ...rule } = declared;
    const out: BackendRule = { ...rule, endpoint: rule.endpoint.trim() };
    if (tlsMaterial && Object.values(tlsMaterial).some((v) => v !== undefined)) {
      if (!SECRET_DATA_KEY.test(rule.name)) {
        issues.push({ index, rule: rule.name, field: 'name', message: 'a rule with TLS material needs a name of letters, digits, ".", "_" and "-" (it names the files)' });
      }
      const tls: BackendTLS = { ...(rule.backendTLS ?? {}) };
      for (const { field, key, pem } of tlsMaterialFiles(rule.name, tlsMaterial)) {
        if (tls[field] !== undefined) {
          issues.push({ index, rule: rule.name, field: `backendTLS.${field}`, message: 'is given both as a file and as TLS material; keep one' });
        }
        files[key] = pem;
        tls[field] = `${mount}/${key}`;
      }
      if ((tlsMaterial.cert === undefined) !== (tlsMaterial.key === undefined) && !(tls.certFile && tls.keyFile)) {
        issues.push({ index, rule: rule.name, field: 'tlsMaterial', message: 'a client certificate needs both cert and key' });
      }
      out.backendTLS = tls;
    }
    return canonicalize(out, BackendRuleSchema) as BackendRule;
  });
  if (issues.length) throw new TopologyValidationError('compiled topology', issues);

  const migration = options.migration && Object.keys(options.migration).length ? (canonicalize(options.migration, MigrationSettingsSchema) as MigrationSettings) : undefined;
  const document = { backends, ...(migration ? { migration } : {}) };
  const result = validateTopology(document);
  if (!result.ok) throw new TopologyValidationError('compiled topology', result.issues);

  const documentYaml = renderTopologyDocument(document);
  const routing: RoutingTable = {
    rules: rules.map((r, i) => {
      const match: RoutingRule['match'] = {};
      for (const f of MATCH_FIELDS) if (r[f] !== undefined) (match as Record<string, unknown>)[f] = canonicalize(r[f], BackendRuleSchema.properties[f]);
      const tls = Boolean(backends[i]!.backendTLS && (backends[i]!.backendTLS!.caFile || backends[i]!.backendTLS!.certFile));
      // name first: in a line diff of the YAML, each rule's entry starts with its name.
      return {
        name: r.name,
        position: i + 1,
        match,
        backend: describeBackend(r.endpoint, { key: options.fingerprintKey, target: r.target, tls }),
      };
    }),
  };
  if (options.defaultEndpoint !== undefined) {
    routing.default = describeBackend(options.defaultEndpoint, { key: options.fingerprintKey, target: options.defaultTarget });
  }
  if (migration) routing.migration = migration;
  return {
    documentYaml,
    secretData: { [TOPOLOGY_DOCUMENT_KEY]: documentYaml, ...sortedObject(files) },
    routing,
    routingYaml: routingTableYaml(routing),
  };
}

function sortedObject(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The routing table as YAML, with a header saying what it is (ConfigMap readers see it). */
export function routingTableYaml(routing: RoutingTable): string {
  const header =
    '# HariKube routing table: rules in order, first match wins; unmatched keys go to "default".\n' +
    '# Endpoints and credentials are not here (they are in the topology Secret); fingerprints are keyed.\n';
  return header + toYaml(routing);
}

/**
 * Keyed hash of everything the middleware reads from the topology (Secret data and the default endpoint).
 * Keyed so it can be published unencrypted (a pod annotation) without offering an offline guessing oracle for
 * low-entropy passwords inside the document.
 */
export function topologyHash(key: string, secretData: Record<string, string>, defaultEndpoint = ''): string {
  const canonical = JSON.stringify([defaultEndpoint, Object.entries(sortedObject(secretData))]);
  return keyedHash(key, canonical);
}

/**
 * Validation of topology documents and TopologyConfig specs: the schema (from `schema.ts`) plus the rules a
 * schema cannot say (one match block, unique names and endpoints, regexps that compile, endpoints that
 * parse). Every error names the rule (index and name) and the field, so a user can find it.
 */
import { Value } from '@sinclair/typebox/value';
import type { TSchema } from '@sinclair/typebox';
import { parse as parseYaml } from 'yaml';
import {
  MATCH_FIELDS,
  TopologyConfigSpecSchema,
  TopologyDocumentSchema,
  type BackendRule,
  type TopologyConfigSpec,
  type TopologyDocument,
} from './schema.js';
import { parseEndpoint } from './endpoint.js';
import { parseDuration } from './duration.js';

export interface TopologyIssue {
  /** Index of the rule in `backends`, when the problem is inside one. */
  index?: number;
  /** The rule's name, when it has one. */
  rule?: string;
  /** Dotted path of the offending field inside the rule (or the document). */
  field: string;
  message: string;
}

export function formatIssue(issue: TopologyIssue): string {
  const where =
    issue.index === undefined ? '' : `backends[${issue.index}]${issue.rule ? ` (name "${issue.rule}")` : ''}: `;
  return `${where}field "${issue.field}": ${issue.message}`;
}

export class TopologyValidationError extends Error {
  constructor(
    readonly source: string,
    readonly issues: TopologyIssue[],
  ) {
    super(`invalid topology from ${source}:\n  ${issues.map(formatIssue).join('\n  ')}`);
    this.name = 'TopologyValidationError';
  }
}

export type Validation<T> = { ok: true; value: T } | { ok: false; issues: TopologyIssue[] };

const DURATION_FIELDS = ['compactInterval', 'compactIntervalJitter', 'compactTimeout'] as const;

function schemaIssues(schema: TSchema, value: unknown, rulesAt: string, rules: unknown): TopologyIssue[] {
  const issues: TopologyIssue[] = [];
  const seen = new Set<string>();
  for (const e of Value.Errors(schema, value)) {
    const parts = e.path.split('/').slice(1);
    let issue: TopologyIssue;
    if (parts[0] === rulesAt && parts.length >= 2 && /^\d+$/.test(parts[1]!)) {
      const index = Number(parts[1]);
      const rule = Array.isArray(rules) ? (rules[index] as { name?: unknown } | undefined) : undefined;
      issue = {
        index,
        rule: typeof rule?.name === 'string' ? rule.name : undefined,
        field: parts.slice(2).join('.') || '(rule)',
        message: describe(e.message, e.value),
      };
    } else {
      issue = { field: parts.join('.') || '(document)', message: describe(e.message, e.value) };
    }
    const key = `${issue.index}|${issue.field}`;
    if (seen.has(key)) continue; // TypeBox reports unions once per branch; one message a field is enough
    seen.add(key);
    issues.push(issue);
  }
  return issues;
}

function describe(message: string, value: unknown): string {
  if (message === 'Unexpected property') return 'unknown field (check its spelling against the topology reference)';
  if (message === 'Expected union value') return `${JSON.stringify(value)} is not a duration such as "5m" or "1m30s"`;
  return `${message.charAt(0).toLowerCase()}${message.slice(1)}${value === undefined ? '' : `, got ${JSON.stringify(value)}`}`;
}

/** The checks a JSON schema cannot express, over an already schema-valid list of rules. */
function ruleIssues(rules: BackendRule[]): TopologyIssue[] {
  const issues: TopologyIssue[] = [];
  const names = new Map<string, number>();
  const endpoints = new Map<string, number>();
  rules.forEach((r, index) => {
    const at = (field: string, message: string) => issues.push({ index, rule: r.name, field, message });
    const blocks = MATCH_FIELDS.filter((f) => r[f] !== undefined);
    if (blocks.length === 0) at('(match)', `needs exactly one match block: one of ${MATCH_FIELDS.join(', ')}`);
    if (blocks.length > 1) at(blocks.join(','), `has ${blocks.length} match blocks; a rule takes exactly one`);
    if (r.name === 'default') at('name', '"default" is reserved for the middleware\'s --endpoint backend');
    const dupName = names.get(r.name);
    if (dupName !== undefined) at('name', `duplicates the name of backends[${dupName}]`);
    else names.set(r.name, index);
    const dupEndpoint = endpoints.get(r.endpoint);
    if (dupEndpoint !== undefined) {
      at('endpoint', `duplicates the endpoint of backends[${dupEndpoint}] (name "${rules[dupEndpoint]!.name}")`);
    } else endpoints.set(r.endpoint, index);
    try {
      parseEndpoint(r.endpoint);
    } catch (e) {
      at('endpoint', (e as Error).message);
    }
    if (r.regexp) {
      if (r.regexp.prefix === undefined && r.regexp.key === undefined) at('regexp', 'needs "prefix", "key" or both');
      for (const f of ['prefix', 'key'] as const) {
        const src = r.regexp[f];
        if (src === undefined) continue;
        try {
          new RegExp(src);
        } catch (e) {
          at(`regexp.${f}`, `does not compile: ${(e as Error).message}`);
        }
      }
    }
    if (r.customresource && r.customresource.group.includes('/')) at('customresource.group', 'an API group has no "/"');
    if (r.prefix && r.prefix.prefix.startsWith('/registry')) {
      at('prefix.prefix', 'is relative to /registry/: write "pods", not "/registry/pods"');
    }
    for (const f of DURATION_FIELDS) {
      const v = r[f];
      if (v === undefined) continue;
      try {
        parseDuration(v);
      } catch (e) {
        at(f, (e as Error).message);
      }
    }
  });
  return issues;
}

/** Validates a parsed topology document (`backends: null` or empty counts as no rules). */
export function validateTopology(input: unknown): Validation<TopologyDocument> {
  const doc =
    input && typeof input === 'object' && !Array.isArray(input) && (input as { backends?: unknown }).backends == null
      ? { ...(input as object), backends: [] }
      : input;
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) {
    return { ok: false, issues: [{ field: '(document)', message: 'must be a mapping with a "backends" list' }] };
  }
  const issues = schemaIssues(TopologyDocumentSchema, doc, 'backends', (doc as { backends?: unknown }).backends);
  if (issues.length) return { ok: false, issues };
  const value = doc as TopologyDocument;
  const more = ruleIssues(value.backends);
  return more.length ? { ok: false, issues: more } : { ok: true, value };
}

/** Validates a TopologyConfig `spec` (defaults applied: `targetSecret`). */
export function validateTopologyConfigSpec(input: unknown): Validation<TopologyConfigSpec> {
  const issues = schemaIssues(TopologyConfigSpecSchema, input, 'backends', (input as { backends?: unknown })?.backends);
  if (issues.length) return { ok: false, issues };
  const value = Value.Default(TopologyConfigSpecSchema, structuredClone(input)) as TopologyConfigSpec;
  const more = ruleIssues(value.backends);
  return more.length ? { ok: false, issues: more } : { ok: true, value };
}

/** Parses YAML (or JSON) text and validates it; throws `TopologyValidationError` naming `source`. */
export function parseTopology(text: string, source: string): TopologyDocument {
  let parsed: unknown;
  try {
    parsed = text.trim() === '' ? { backends: [] } : parseYaml(text);
  } catch (e) {
    throw new TopologyValidationError(source, [{ field: '(document)', message: `is not valid YAML: ${(e as Error).message}` }]);
  }
  const result = validateTopology(parsed);
  if (!result.ok) throw new TopologyValidationError(source, result.issues);
  return result.value;
}

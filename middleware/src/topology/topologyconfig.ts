/**
 * The `harikube.info/v1` TopologyConfig resource: its object and status types, the status schema (the CRD's
 * status is generated from it, like the spec is from `schema.ts`), and a typed builder that validates a
 * resource the way the operator will, so a bad one fails at `pulumi preview` instead of in the cluster.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { BackendRule, TopologyConfigSpec } from './schema.js';
import { withStandInEndpoints } from './stand-in-endpoints.js';
import { TopologyValidationError, validateTopologyConfigSpec, type TopologyIssue, type Validation } from './validate.js';

export const TOPOLOGYCONFIG_API_VERSION = 'harikube.info/v1';

export const DEPLOY_STATUSES = ['Pending', 'Active', 'Failed', 'Migrating'] as const;
export type DeployStatus = (typeof DEPLOY_STATUSES)[number];

/** A standard `metav1.Condition` (what `kubectl wait --for=condition=Ready` reads). */
export const ConditionSchema = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 316, description: 'Type of the condition, e.g. Ready.' }),
    status: Type.Union([Type.Literal('True'), Type.Literal('False'), Type.Literal('Unknown')], {
      description: 'True, False or Unknown.',
    }),
    observedGeneration: Type.Optional(
      Type.Integer({ minimum: 0, description: 'metadata.generation the condition was set for.' }),
    ),
    lastTransitionTime: Type.String({ format: 'date-time', description: 'When the status last changed.' }),
    reason: Type.String({
      minLength: 1,
      maxLength: 1024,
      pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$',
      description: 'CamelCase reason for the last transition.',
    }),
    message: Type.String({ maxLength: 32768, description: 'Human-readable details.' }),
  },
  { additionalProperties: false, description: 'One aspect of the current state of the resource.' },
);

export const TopologyConfigStatusSchema = Type.Object(
  {
    deployStatus: Type.Optional(
      Type.Union(
        DEPLOY_STATUSES.map((s) => Type.Literal(s)),
        {
          default: 'Pending',
          description:
            'Pending until every middleware reading the target Secret has applied the rules, then Active; Migrating while a middleware moves keys for them; Failed with a reason.',
        },
      ),
    ),
    deployStatusReason: Type.Optional(
      Type.String({ description: 'Why the resource is Failed (names the rule and field), or what was applied.' }),
    ),
    observedGeneration: Type.Optional(
      Type.Integer({ minimum: 0, description: 'metadata.generation the operator last acted on.' }),
    ),
    conditions: Type.Optional(
      Type.Array(ConditionSchema, {
        description: 'Standard conditions; Ready is True when the rules are Active.',
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['type'],
      }),
    ),
  },
  { additionalProperties: false, description: 'Observed state of the TopologyConfig, written by the operator.' },
);

export type Condition = Static<typeof ConditionSchema>;
export interface TopologyConfigStatus extends Static<typeof TopologyConfigStatusSchema> {}

export interface TopologyConfigObject {
  apiVersion: 'harikube.info/v1';
  kind: 'TopologyConfig';
  metadata: {
    name: string;
    namespace: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  spec: TopologyConfigSpec;
  status?: TopologyConfigStatus;
}

/** Enough to hold any base64 of nonce(12) || ciphertext(>= 1) || tag(16). */
const MIN_SEALED_BYTES = 12 + 1 + 16;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Validates a TopologyConfig spec as the operator does. With `endpointDecryptSecret` set, endpoints are
 * ciphertext: they must look like base64 of `nonce || ciphertext || tag`, and everything else about the rules
 * is checked with a stand-in endpoint (the real one is checked after decryption, in the cluster).
 */
export function validateTopologyConfigResource(spec: unknown): Validation<TopologyConfigSpec> {
  const s = spec as { endpointDecryptSecret?: unknown; backends?: unknown } | null;
  if (!s || typeof s !== 'object' || !s.endpointDecryptSecret || !Array.isArray(s.backends)) {
    return validateTopologyConfigSpec(spec);
  }
  const sealed = s.backends as Array<{ endpoint?: unknown; name?: unknown }>;
  // Identical ciphertexts are the same endpoint; a rule without a string endpoint is left to the validator.
  const standIns = withStandInEndpoints(sealed, (rule) => (rule && typeof rule === 'object' && typeof rule.endpoint === 'string' ? rule.endpoint : undefined));
  const result = validateTopologyConfigSpec({ ...s, backends: standIns });
  const issues: TopologyIssue[] = result.ok ? [] : [...result.issues];
  sealed.forEach((rule, index) => {
    if (typeof rule?.endpoint !== 'string') return;
    const text = rule.endpoint.trim();
    const bytes = BASE64.test(text) ? Buffer.from(text, 'base64').length : 0;
    if (bytes < MIN_SEALED_BYTES) {
      issues.push({
        index,
        rule: typeof rule.name === 'string' ? rule.name : undefined,
        field: 'endpoint',
        message:
          'endpointDecryptSecret is set, so the endpoint must be base64 of nonce(12) || ciphertext || tag(16); ' +
          'encrypt it with `harikube topologyconfig encrypt --key-file KEY`',
      });
    }
  });
  if (issues.length) return { ok: false, issues };
  // The validated value carries the stand-ins; put the sealed endpoints back.
  const value = result.ok ? result.value : (undefined as never);
  return {
    ok: true,
    value: { ...value, backends: value.backends.map((r, i) => ({ ...r, endpoint: sealed[i]!.endpoint as string })) },
  };
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * A TopologyConfig resource, validated (defaults applied: `targetSecret`). Throws `TopologyValidationError`
 * naming the resource, the rule and the field when something is wrong.
 */
export function topologyConfig(args: {
  name: string;
  namespace: string;
  position: number;
  backends: BackendRule[];
  targetSecret?: string;
  endpointDecryptSecret?: string;
  labels?: Record<string, string>;
}): TopologyConfigObject {
  const source = `TopologyConfig ${args.namespace}/${args.name}`;
  const metaIssues: TopologyIssue[] = [];
  if (args.name.length > 253 || !DNS_SUBDOMAIN.test(args.name)) {
    metaIssues.push({ field: 'metadata.name', message: `"${args.name}" is not a DNS subdomain (lowercase a-z, 0-9, "-", ".")` });
  }
  if (args.namespace.length > 63 || !DNS_LABEL.test(args.namespace)) {
    metaIssues.push({ field: 'metadata.namespace', message: `"${args.namespace}" is not a DNS label (lowercase a-z, 0-9, "-")` });
  }
  if (metaIssues.length) throw new TopologyValidationError(source, metaIssues);

  const spec: Record<string, unknown> = { backends: args.backends, position: args.position };
  if (args.targetSecret !== undefined) spec.targetSecret = args.targetSecret;
  if (args.endpointDecryptSecret !== undefined) spec.endpointDecryptSecret = args.endpointDecryptSecret;
  const result = validateTopologyConfigResource(spec);
  if (!result.ok) throw new TopologyValidationError(source, result.issues);

  return {
    apiVersion: TOPOLOGYCONFIG_API_VERSION,
    kind: 'TopologyConfig',
    metadata: {
      name: args.name,
      namespace: args.namespace,
      ...(args.labels ? { labels: { ...args.labels } } : {}),
    },
    spec: result.value,
  };
}

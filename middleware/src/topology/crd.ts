/**
 * The `topologyconfigs.harikube.info` CustomResourceDefinition, generated from the TypeBox schemas (the spec
 * from `schema.ts`, the status from `topologyconfig.ts`), so the CRD can never drift from what the operator
 * and the middleware validate. Field names and shapes match the old operator's CRD.
 */
import type { TSchema } from '@sinclair/typebox';
import { TopologyConfigSpecSchema, isDurationSchema } from './schema.js';
import { TopologyConfigStatusSchema } from './topologyconfig.js';

export const TOPOLOGYCONFIG_GROUP = 'harikube.info';
export const TOPOLOGYCONFIG_VERSION = 'v1';
export const TOPOLOGYCONFIG_KIND = 'TopologyConfig';
export const TOPOLOGYCONFIG_PLURAL = 'topologyconfigs';
export const TOPOLOGYCONFIG_SINGULAR = 'topologyconfig';
export const TOPOLOGYCONFIG_CRD_NAME = `${TOPOLOGYCONFIG_PLURAL}.${TOPOLOGYCONFIG_GROUP}`;

type Json = Record<string, any>;

/** Value validations a structural schema may carry as they are. */
const COPIED = [
  'description',
  'default',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'minLength',
  'maxLength',
  'minItems',
  'maxItems',
  'uniqueItems',
  'enum',
  'nullable',
] as const;

/** Formats the API server knows; others (e.g. TypeBox-only ones) are dropped. */
const KUBE_FORMATS = new Set(['date-time', 'date', 'int32', 'int64', 'byte', 'uri', 'email', 'hostname', 'ipv4', 'ipv6', 'uuid']);

/** Regexp features the API server's Go (RE2) engine rejects: lookaround and backreferences. */
const NOT_RE2 = /\(\?[=!<]|\\[1-9]/;

/**
 * Converts a TypeBox (JSON) schema to a structural OpenAPI v3 schema: every node typed, no
 * `additionalProperties: false` (the API server prunes unknown fields instead), durations become
 * int-or-string, `x-kubernetes-*` extensions pass through. Throws naming the path for what it cannot express.
 */
export function toStructuralSchema(schema: TSchema | Json, path = '(root)'): Json {
  const s = schema as Json;
  const out: Json = {};
  if (isDurationSchema(s as TSchema)) {
    if (s.description) out.description = s.description;
    if (s.default !== undefined) out.default = s.default;
    out['x-kubernetes-int-or-string'] = true;
    return out;
  }
  if (Array.isArray(s.anyOf)) {
    // A union of literals (Type.Union([Type.Literal('A'), ...])) is an enum; nothing else is structural.
    const consts = s.anyOf as Json[];
    const type = consts[0]?.type;
    if (!consts.every((c) => c.const !== undefined && c.type === type)) {
      throw new Error(`${path}: a union other than literals or a duration cannot be expressed in a CRD schema`);
    }
    out.type = type;
    out.enum = consts.map((c) => c.const);
  } else if (s.const !== undefined) {
    out.type = s.type;
    out.enum = [s.const];
  } else if (typeof s.type === 'string') {
    out.type = s.type;
  } else {
    throw new Error(`${path}: schema has no single type, which a CRD schema requires`);
  }
  for (const key of COPIED) if (s[key] !== undefined && out[key] === undefined) out[key] = s[key];
  if (typeof s.format === 'string' && KUBE_FORMATS.has(s.format)) out.format = s.format;
  if (typeof s.pattern === 'string' && !NOT_RE2.test(s.pattern)) out.pattern = s.pattern;
  for (const [key, value] of Object.entries(s)) if (key.startsWith('x-kubernetes-')) out[key] = value;

  if (out.type === 'object') {
    if (s.properties) {
      out.properties = {};
      for (const [name, child] of Object.entries(s.properties as Json)) {
        out.properties[name] = toStructuralSchema(child as Json, `${path}.${name}`);
      }
    }
    if (Array.isArray(s.required) && s.required.length) out.required = [...s.required];
    if (s.additionalProperties && typeof s.additionalProperties === 'object') {
      out.additionalProperties = toStructuralSchema(s.additionalProperties as Json, `${path}.*`);
    }
  }
  if (out.type === 'array') {
    if (!s.items) throw new Error(`${path}: an array needs an items schema`);
    out.items = toStructuralSchema(s.items as Json, `${path}[]`);
  }
  return out;
}

/** The openAPIV3Schema of the `v1` version: the object envelope, the spec and the status. */
export function topologyConfigOpenApiSchema(): Json {
  return {
    description: 'TopologyConfig holds routing rules that the HariKube operator merges into a topology Secret.',
    type: 'object',
    required: ['spec'],
    properties: {
      apiVersion: {
        description: 'APIVersion defines the versioned schema of this representation of an object.',
        type: 'string',
      },
      kind: { description: 'Kind is a string value representing the REST resource this object represents.', type: 'string' },
      metadata: { type: 'object' },
      spec: toStructuralSchema(TopologyConfigSpecSchema, 'spec'),
      status: toStructuralSchema(TopologyConfigStatusSchema, 'status'),
    },
  };
}

/** The full CustomResourceDefinition manifest, as a plain object (`harikube operator crd` prints it). */
export function topologyConfigCrd(): Record<string, any> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: TOPOLOGYCONFIG_CRD_NAME,
      labels: { 'app.kubernetes.io/name': 'harikube', 'app.kubernetes.io/component': 'topology-operator' },
    },
    spec: {
      group: TOPOLOGYCONFIG_GROUP,
      names: {
        kind: TOPOLOGYCONFIG_KIND,
        listKind: `${TOPOLOGYCONFIG_KIND}List`,
        plural: TOPOLOGYCONFIG_PLURAL,
        singular: TOPOLOGYCONFIG_SINGULAR,
      },
      scope: 'Namespaced',
      versions: [
        {
          name: TOPOLOGYCONFIG_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'DeployStatus', type: 'string', jsonPath: '.status.deployStatus' },
            { name: 'TargetSecret', type: 'string', jsonPath: '.spec.targetSecret' },
            { name: 'Position', type: 'integer', jsonPath: '.spec.position' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: { openAPIV3Schema: topologyConfigOpenApiSchema() },
        },
      ],
    },
  };
}

/**
 * The one definition of the topology document and the TopologyConfig spec.
 *
 * Everything else derives from these TypeBox schemas: the TypeScript types (`Static`), runtime validation
 * (`validate.ts`), the CRD's OpenAPI schema (`crd.ts`) and the Pulumi components' typed inputs. Field names
 * and shapes are those of existing HariKube topology files and `harikube.info/v1` resources, so users can
 * bring theirs unchanged.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

/** Marks a schema as a duration: a Go-style string (`5m`, `1m30s`) or integer nanoseconds (old CRD form). */
export const DURATION_FORMAT = 'harikube-duration';

const Duration = (description: string) =>
  Type.Union([Type.String({ pattern: '^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$' }), Type.Integer({ minimum: 0 })], {
    description: `${description} A duration such as "5m" or "1m30s", or integer nanoseconds.`,
    [DURATION_FORMAT]: true,
  });

export const BackendTLSSchema = Type.Object(
  {
    caFile: Type.Optional(Type.String({ description: 'CA bundle used to verify the backend server.' })),
    certFile: Type.Optional(Type.String({ description: 'Client certificate presented to the backend.' })),
    keyFile: Type.Optional(Type.String({ description: 'Private key of the client certificate.' })),
    skipVerify: Type.Optional(Type.Boolean({ description: 'Do not verify the backend certificate (testing only).' })),
  },
  { additionalProperties: false, description: 'TLS settings for the connection to this backend.' },
);

export const ConnectionPoolSchema = Type.Object(
  {
    maxIdle: Type.Optional(Type.Integer({ minimum: 0, description: 'Idle connections kept open.' })),
    maxOpen: Type.Optional(Type.Integer({ minimum: 0, description: 'Connections open at most (0 = driver default).' })),
    maxLifeTime: Type.Optional(Duration('Longest a connection is reused.')),
    maxIdleLifeTime: Type.Optional(Duration('Longest a connection stays idle before it is closed.')),
  },
  { additionalProperties: false, description: 'Connection pool settings for SQL backends.' },
);

export const NamespaceMatchSchema = Type.Object(
  {
    namespace: Type.String({ minLength: 1, description: 'Namespace whose objects this rule routes.' }),
    kinds: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        description: 'Resource plurals to route (e.g. pods, deployments); all namespaced built-ins when omitted.',
      }),
    ),
  },
  { additionalProperties: false, description: 'Routes built-in namespaced objects of one namespace.' },
);

export const PrefixMatchSchema = Type.Object(
  { prefix: Type.String({ minLength: 1, description: 'Key prefix relative to /registry/ (e.g. "pods").' }) },
  { additionalProperties: false, description: 'Routes every key under /registry/<prefix>.' },
);

export const CustomResourceMatchSchema = Type.Object(
  {
    group: Type.String({ minLength: 1, description: 'API group of the custom resource (e.g. stable.example.com).' }),
    kind: Type.Optional(Type.String({ description: 'Resource plural; empty or omitted routes the whole group.' })),
  },
  { additionalProperties: false, description: 'Routes custom resources stored under /registry/<group>/<kind>/.' },
);

export const RegexpMatchSchema = Type.Object(
  {
    prefix: Type.Optional(Type.String({ description: 'Regular expression matched against range and watch prefixes.' })),
    key: Type.Optional(Type.String({ description: 'Regular expression matched against single-key operations.' })),
  },
  { additionalProperties: false, description: 'Routes keys matched by regular expressions.' },
);

/** The match blocks; a rule has exactly one of them. */
export const MATCH_FIELDS = ['namespace', 'prefix', 'customresource', 'regexp'] as const;
export type MatchField = (typeof MATCH_FIELDS)[number];

export const BackendRuleSchema = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      description: 'Unique, stable name of the backend: data and revisions belong to it.',
    }),
    endpoint: Type.String({
      minLength: 1,
      description:
        'Where the data lives: http(s)://host:port[,host:port] (etcd or a middleware), postgres://, mysql://, sqlite://.',
    }),
    backendTLS: Type.Optional(BackendTLSSchema),
    connectionPool: Type.Optional(ConnectionPoolSchema),
    namespace: Type.Optional(NamespaceMatchSchema),
    prefix: Type.Optional(PrefixMatchSchema),
    customresource: Type.Optional(CustomResourceMatchSchema),
    regexp: Type.Optional(RegexpMatchSchema),
    compactInterval: Type.Optional(Duration('How often this backend is compacted.')),
    compactIntervalJitter: Type.Optional(Duration('Random delay added to each compaction interval.')),
    compactTimeout: Type.Optional(Duration('Longest one compaction run may take.')),
    compactMinRetain: Type.Optional(Type.Integer({ minimum: 0, description: 'Revisions always kept below the head.' })),
    compactBatchSize: Type.Optional(Type.Integer({ minimum: 1, description: 'Rows deleted per compaction batch.' })),
  },
  { additionalProperties: false, description: 'One routing rule and the backend it sends matching keys to.' },
);

export const MigrationSettingsSchema = Type.Object(
  {
    keysPerSecond: Type.Optional(
      Type.Integer({
        minimum: 0,
        description:
          "Keys per second the online migration moves at most (0: no limit); overrides the middleware's --migration-rate while this topology is in effect.",
      }),
    ),
  },
  { additionalProperties: false, description: 'How the online migration moves keys that a routing change sends to another backend.' },
);

export const TopologyDocumentSchema = Type.Object(
  {
    backends: Type.Array(BackendRuleSchema, {
      description: 'Ordered rules; the first match wins; unmatched keys go to the default backend.',
    }),
    migration: Type.Optional(MigrationSettingsSchema),
  },
  { additionalProperties: false, description: 'A HariKube topology document.' },
);

/** `namespace/name` of a Kubernetes object. */
const NamespacedName = (description: string) =>
  Type.String({ pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$', description });

export const DEFAULT_TARGET_SECRET = 'harikube/topology-config';

export const TopologyConfigSpecSchema = Type.Object(
  {
    backends: Type.Array(BackendRuleSchema, {
      minItems: 1,
      description: "This resource's rules, in order; merged with other resources by position.",
    }),
    position: Type.Integer({ minimum: 1, description: 'Global order of these rules in the merged topology.' }),
    targetSecret: Type.Optional(
      Type.String({
        ...NamespacedName('namespace/name of the generated topology Secret.'),
        default: DEFAULT_TARGET_SECRET,
      }),
    ),
    endpointDecryptSecret: Type.Optional(
      NamespacedName(
        'namespace/name of a Secret holding AES-256-GCM keys; when set, every endpoint is base64(nonce || ciphertext || tag).',
      ),
    ),
  },
  { additionalProperties: false, description: 'Desired routing rules of one application.' },
);

export type BackendTLS = Static<typeof BackendTLSSchema>;
export type ConnectionPool = Static<typeof ConnectionPoolSchema>;
export type NamespaceMatch = Static<typeof NamespaceMatchSchema>;
export type PrefixMatch = Static<typeof PrefixMatchSchema>;
export type CustomResourceMatch = Static<typeof CustomResourceMatchSchema>;
export type RegexpMatch = Static<typeof RegexpMatchSchema>;
export type BackendRule = Static<typeof BackendRuleSchema>;
export type MigrationSettings = Static<typeof MigrationSettingsSchema>;
export type TopologyDocument = Static<typeof TopologyDocumentSchema>;
export type TopologyConfigSpec = Static<typeof TopologyConfigSpecSchema>;

/** True for schemas created by `Duration` above (lets the CRD generator emit int-or-string). */
export function isDurationSchema(schema: TSchema): boolean {
  return (schema as Record<string, unknown>)[DURATION_FORMAT] === true;
}

/**
 * The platform stack's configuration: one TypeBox schema (defaults, validation with paths in errors) turned
 * into `HariKubePlatformArgs`.
 *
 * Scalar and list settings are also declared, typed, in the top-level `Pulumi.yaml`; the structured ones
 * (`apiServer`, `databases`, `layers`) cannot be (project config types are string, integer, boolean, array),
 * so this schema is where they are checked. Credentials never come from plain config: an external endpoint is
 * referenced by the name of a secret config key (`{ secretConfig: "key" }`, set with `pulumi config set
 * --secret key ...`).
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import * as pulumi from '@pulumi/pulumi';
import { BackendRuleSchema, MigrationSettingsSchema } from '../../middleware/src/topology/schema.js';
import { SECRET_DATA_KEY } from '../../middleware/src/topology/secret-layout.js';
import type { BackendRef, HariKubePlatformArgs, PlatformLayer, PlatformRule } from '../../components/platform.js';

const Name = Type.String({ pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 40 });
const Labels = Type.Record(Type.String(), Type.String());

const Resources = Type.Object(
  {
    cpuRequest: Type.Optional(Type.String()),
    memoryRequest: Type.Optional(Type.String()),
    cpuLimit: Type.Optional(Type.String()),
    memoryLimit: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const BackendRefSchema = Type.Union([
  Type.Object({ postgres: Name, database: Type.Optional(Type.String({ pattern: '^[a-z_][a-z0-9_]*$' })) }, { additionalProperties: false }),
  Type.Object({ mariadb: Name, database: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_]+$' })) }, { additionalProperties: false }),
  Type.Object({ etcd: Name }, { additionalProperties: false }),
  Type.Object({ layer: Name }, { additionalProperties: false }),
  Type.Object({ sqlite: Type.String({ pattern: '^[A-Za-z0-9._-]+$' }) }, { additionalProperties: false }),
  Type.Object({ secretConfig: Type.String({ minLength: 1 }), target: Type.Optional(Type.String()) }, { additionalProperties: false }),
]);

const { endpoint: _endpoint, ...ruleFields } = BackendRuleSchema.properties;
export const RuleSchema = Type.Object({ ...ruleFields, backend: BackendRefSchema }, { additionalProperties: false });

const Storage = Type.Union([
  Type.Object({ size: Type.Optional(Type.String()), storageClass: Type.Optional(Type.String()), retainOnDelete: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
  Type.Object({ ephemeral: Type.Literal(true), sizeLimit: Type.Optional(Type.String()) }, { additionalProperties: false }),
]);

export const LayerSchema = Type.Object(
  {
    rules: Type.Array(RuleSchema, { default: [] }),
    defaultBackend: Type.Optional(BackendRefSchema),
    replicas: Type.Optional(Type.Integer({ minimum: 1 })),
    leaderElection: Type.Optional(Type.Boolean()),
    storage: Type.Optional(Storage),
    resources: Type.Optional(Resources),
    topologySource: Type.Optional(Type.Union([Type.Literal('pulumi'), Type.Literal('operator')])),
    topologyPosition: Type.Optional(Type.Integer({ minimum: 1 })),
    migration: Type.Optional(MigrationSettingsSchema),
  },
  { additionalProperties: false },
);

const Instance = {
  storageSize: Type.Optional(Type.String()),
  storageClass: Type.Optional(Type.String()),
  resources: Type.Optional(Resources),
};

export const PlatformConfigSchema = Type.Object(
  {
    namespace: Type.String({ default: 'harikube', description: 'Namespace of the platform.' }),
    image: Type.Optional(Type.String({ minLength: 1, description: 'Prebuilt HariKube image (prefer a digest reference).' })),
    imageRepository: Type.Optional(Type.String({ minLength: 1, description: 'Build middleware/Dockerfile and push here; deployed by digest.' })),
    imageTag: Type.String({ default: 'latest', description: 'Tag pushed with a build.' }),
    imagePullSecrets: Type.Array(Type.String(), { default: [] }),
    apiServer: Type.Object(
      { cidrs: Type.Optional(Type.Array(Type.String())), podSelector: Type.Optional(Labels), namespaceSelector: Type.Optional(Labels) },
      { additionalProperties: false, default: {} },
    ),
    tls: Type.Boolean({ default: false }),
    tlsIssuer: Type.Optional(Type.String({ pattern: '^(Issuer|ClusterIssuer)/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$' })),
    topologyOperator: Type.Boolean({ default: true }),
    topologyEncryptionKeys: Type.Array(Type.String({ pattern: SECRET_DATA_KEY.source }), { default: ['key-1'], minItems: 1, description: 'Endpoint encryption key names, oldest first.' }),
    topologyActiveKey: Type.Optional(Type.String({ minLength: 1, description: 'The key applications seal with; default the last one.' })),
    topologySecretNamespaces: Type.Array(Type.String(), { default: [], description: 'More namespaces whose Secrets the operator may use.' }),
    databaseOperators: Type.Boolean({ default: true }),
    databases: Type.Object(
      {
        postgres: Type.Record(Name, Type.Object({ instances: Type.Optional(Type.Integer({ minimum: 1 })), imageName: Type.Optional(Type.String()), ...Instance }, { additionalProperties: false }), { default: {} }),
        mariadb: Type.Record(Name, Type.Object({ replicas: Type.Optional(Type.Integer({ minimum: 1 })), image: Type.Optional(Type.String()), ...Instance }, { additionalProperties: false }), { default: {} }),
        etcd: Type.Record(Name, Type.Object({ replicas: Type.Optional(Type.Integer({ minimum: 1 })), image: Type.Optional(Type.String()), ...Instance }, { additionalProperties: false }), { default: {} }),
      },
      { additionalProperties: false, default: {} },
    ),
    layers: Type.Record(Name, LayerSchema, { minProperties: 1 }),
  },
  { additionalProperties: false },
);

export type PlatformConfig = Static<typeof PlatformConfigSchema>;

/** Keys of the platform config (each is `harikube:<key>` in stack files). */
export const CONFIG_KEYS = Object.keys(PlatformConfigSchema.properties) as Array<keyof PlatformConfig>;

export class PlatformConfigError extends Error {}

/** Validates raw config values (as read from the stack), applies defaults; errors name the key path. */
export function parsePlatformConfig(raw: Record<string, unknown>): PlatformConfig {
  // Pulumi.yaml declares optional strings with default "" (a declared key without default is required).
  const given = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== ''));
  const value = Value.Default(PlatformConfigSchema, structuredClone(given)) as Record<string, unknown>;
  const errors = [...Value.Errors(PlatformConfigSchema as TSchema, value)];
  if (errors.length) {
    const seen = new Set<string>();
    const lines = errors
      .map((e) => `  harikube:${e.path.slice(1).replace(/\//g, '.') || '(root)'}: ${e.message}`)
      .filter((l) => (seen.has(l) ? false : (seen.add(l), true)));
    throw new PlatformConfigError(`invalid platform configuration:\n${lines.slice(0, 20).join('\n')}`);
  }
  const cfg = value as PlatformConfig;
  if (!cfg.image === !cfg.imageRepository) throw new PlatformConfigError('set exactly one of harikube:image (prebuilt) or harikube:imageRepository (build and push)');
  return cfg;
}

/** Reads every key from Pulumi config (structured keys as objects). */
export function readPlatformConfig(config: pulumi.Config): PlatformConfig {
  const raw: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS) {
    const type = (PlatformConfigSchema.properties[key] as { type?: string }).type;
    const v = type === 'string' ? config.get(key) : type === 'boolean' ? config.getBoolean(key) : config.getObject<unknown>(key);
    if (v !== undefined) raw[key] = v;
  }
  return parsePlatformConfig(raw);
}

/** Maps the validated config to the component's arguments; secret config keys are read as Pulumi secrets. */
export function platformArgs(cfg: PlatformConfig, config: Pick<pulumi.Config, 'requireSecret'>): HariKubePlatformArgs {
  const ref = (r: Static<typeof BackendRefSchema>): BackendRef => ('secretConfig' in r ? { endpoint: config.requireSecret(r.secretConfig), target: r.target ?? `external/${r.secretConfig}` } : r);
  const layers: Record<string, PlatformLayer> = {};
  for (const [name, l] of Object.entries(cfg.layers)) {
    const { defaultBackend, rules, ...rest } = l;
    layers[name] = {
      ...rest,
      rules: rules.map(({ backend, ...rule }): PlatformRule => ({ ...rule, backend: ref(backend) })),
      ...(defaultBackend ? { defaultBackend: ref(defaultBackend) as PlatformLayer['defaultBackend'] } : {}),
    };
  }
  const [issuerKind, issuerName] = cfg.tlsIssuer ? (cfg.tlsIssuer.split('/') as ['Issuer' | 'ClusterIssuer', string]) : [];
  return {
    namespace: cfg.namespace,
    image: cfg.image ?? { build: { repository: cfg.imageRepository!, tag: cfg.imageTag } },
    imagePullSecrets: cfg.imagePullSecrets,
    databaseOperators: cfg.databaseOperators ? undefined : false,
    postgres: cfg.databases.postgres,
    mariadb: cfg.databases.mariadb,
    etcd: cfg.databases.etcd,
    layers,
    apiServer: cfg.apiServer,
    tls: { enabled: cfg.tls, ...(issuerName ? { issuerRef: { name: issuerName, kind: issuerKind } } : {}) },
    topologyOperator: {
      enabled: cfg.topologyOperator,
      keys: cfg.topologyEncryptionKeys,
      activeKey: cfg.topologyActiveKey,
      secretNamespaces: cfg.topologySecretNamespaces,
    },
  };
}

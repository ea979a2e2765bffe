/**
 * `AppTopology`: how an application stack declares where its Kubernetes objects are stored: a
 * `harikube.info/v1` TopologyConfig built (and validated, as the operator will) by `topologyConfig()`.
 *
 * Endpoints may be secret inputs (e.g. `PostgresCluster.endpoint`). A TopologyConfig is readable by anyone who
 * may read TopologyConfigs, so endpoints with credentials should be sealed: with `encryption`, every endpoint
 * is AES-256-GCM encrypted under the platform's key (the format the operator opens with
 * `endpointDecryptSecret`), and the sealed text is published unencrypted in state and in previews: it is
 * ciphertext. The nonce is derived from the key and the plaintext (HMAC), so an unchanged endpoint seals to the
 * same text on every run (no perpetual diff) while distinct endpoints never share a nonce. Endpoints sealed
 * elsewhere (`harikube topologyconfig encrypt`) can be passed as they are with `preEncrypted`.
 *
 * The resource carries `pulumi.com/waitFor: jsonpath={.status.deployStatus}=Active`: `pulumi up` continues only
 * once every middleware reading the Secret has applied the rules and moved the keys they route elsewhere
 * (Migrating is waited through), so the application's objects are never created before their routing is active.
 * Waiting on the state rather than the Ready condition makes the progress line say what it found (`Pending`,
 * `Migrating`, `Failed`); a long migration needs `readyTimeout` above the provider's 10 minutes.
 */
import { createCipheriv, createHmac } from 'node:crypto';
import * as pulumi from '@pulumi/pulumi';
import * as k8s from '@pulumi/kubernetes';
import type { BackendRule } from '../middleware/src/topology/schema.js';
import { topologyConfig, type TopologyConfigObject } from '../middleware/src/topology/topologyconfig.js';
import { parseEndpoint } from '../middleware/src/topology/endpoint.js';
import { inheritedDependsOn, WAIT_FOR_ANNOTATION } from './kube.js';
import { parseDuration } from '../middleware/src/topology/duration.js';
import { backendLocation, backendType } from '../middleware/src/topology/compile.js';
import { MATCH_FIELDS } from '../middleware/src/topology/schema.js';
import { stringify as stringifyYaml } from 'yaml';

/** Annotation on an application's TopologyConfig: its rules, readable (backend by kind, host and database; no credentials). */
export const ROUTING_ANNOTATION = 'harikube.info/routing';

/**
 * What `pulumi up` waits for: the operator reports the current generation Active (the provider checks
 * status.observedGeneration first). Pending and Migrating are waited through; the progress line shows the
 * state found (`Waiting for {.status.deployStatus}=Active (found "Migrating")`).
 */
export const APP_TOPOLOGY_WAIT_FOR = 'jsonpath={.status.deployStatus}=Active';
/** The provider's per-resource wait limit, in seconds. */
export const TIMEOUT_ANNOTATION = 'pulumi.com/timeoutSeconds';

/**
 * What a platform stack publishes for application stacks (its `appTopologies` output): where TopologyConfigs
 * go and how to seal endpoints, or why the platform does not route them.
 */
export type AppTopologySettings =
  | { targetSecret: string; decryptSecret: string; encryptionKey: string; unavailable?: undefined }
  | { unavailable: string; targetSecret?: undefined; decryptSecret?: undefined; encryptionKey?: undefined };

/**
 * Reads a platform stack's `appTopologies` output for `AppTopology` (`targetSecret` and `encryption`). Fails
 * the preview with the platform's reason when it does not route application TopologyConfigs, instead of
 * creating a TopologyConfig nothing reads.
 */
export function appTopologySettings(platform: pulumi.StackReference): { targetSecret: pulumi.Output<string>; encryption: { key: pulumi.Output<string>; decryptSecret: pulumi.Output<string> } } {
  const settings = pulumi.all([platform.name, platform.getOutput('appTopologies')]).apply(([stack, raw]) => checkAppTopologySettings(stack, raw));
  return {
    targetSecret: settings.apply((s) => s.targetSecret!),
    encryption: { key: pulumi.secret(settings.apply((s) => s.encryptionKey!)), decryptSecret: settings.apply((s) => s.decryptSecret!) },
  };
}

/** The settings a platform stack published, or an error saying why application TopologyConfigs cannot be used. */
export function checkAppTopologySettings(stack: string, raw: unknown): AppTopologySettings & { targetSecret: string } {
  const s = raw as AppTopologySettings | undefined;
  if (!s || s.unavailable !== undefined || !s.targetSecret) {
    throw new Error(`AppTopology: platform stack ${stack}: ${s?.unavailable ?? 'publishes no appTopologies output (an older platform stack?)'}`);
  }
  return s;
}

/** The readable routing of rules (plaintext endpoints): name, match, backend kind and location, never user or password. */
export function describeRouting(rules: BackendRule[]): string {
  return stringifyYaml(
    rules.map((r) => {
      const match = Object.fromEntries(MATCH_FIELDS.filter((f) => r[f] !== undefined).map((f) => [f, r[f]]));
      return { name: r.name, match, backend: { type: backendType(r.endpoint), location: backendLocation(r.endpoint) ?? '(unparsable endpoint)' } };
    }),
    { lineWidth: 0 },
  );
}

/** One rule of an application's topology; the endpoint may be a secret input. */
export interface AppTopologyRule extends Omit<BackendRule, 'endpoint'> {
  /** The backend's endpoint (plaintext; sealed when `encryption` is set), or sealed text with `preEncrypted`. */
  endpoint: pulumi.Input<string>;
}

export interface AppTopologyArgs {
  /** Namespace of the TopologyConfig (usually the application's own). */
  namespace: pulumi.Input<string>;
  /** Name of the TopologyConfig; defaults to the component name. */
  resourceName?: string;
  /** Global order of these rules among every TopologyConfig targeting the same Secret (>= 1). */
  position: number;
  /** The rules, in order. */
  rules: AppTopologyRule[];
  /** `namespace/name` of the topology Secret the operator writes; the operator's default when omitted. */
  targetSecret?: pulumi.Input<string>;
  /** Seal endpoints with this key; the operator opens them with the keys in `decryptSecret`. */
  encryption?: {
    /** AES-256 key, base64 of 32 bytes (e.g. the platform stack's `topologyEncryptionKey` output). */
    key: pulumi.Input<string>;
    /** `namespace/name` of the Secret holding the key(s) for the operator (the platform's `decryptSecret`). */
    decryptSecret: pulumi.Input<string>;
  };
  /** Endpoints are already sealed (base64 of nonce || ciphertext || tag) for `decryptSecret`. */
  preEncrypted?: { decryptSecret: pulumi.Input<string> };
  /** Labels on the TopologyConfig. */
  labels?: Record<string, string>;
  /** Wait for the operator to report the rules Active (applied, keys moved); default true. */
  waitForReady?: boolean;
  /**
   * How long `pulumi up` waits for Active, e.g. `"45m"`; default the provider's 10 minutes. A rule that routes
   * existing keys elsewhere is Migrating until they have moved: about keys / rate seconds (the middleware's
   * `--migration-rate`, 2000 keys/s by default). On a timeout the migration goes on; the next `pulumi up` waits again.
   */
  readyTimeout?: string;
}

const NONCE_BYTES = 12;

/** `readyTimeout` in whole seconds (undefined: the provider's default); throws naming the component. */
export function readyTimeoutSeconds(what: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  let ms: number;
  try {
    ms = parseDuration(value);
  } catch (e) {
    throw new Error(`${what}: readyTimeout ${JSON.stringify(value)}: ${(e as Error).message}`);
  }
  if (ms < 1000) throw new Error(`${what}: readyTimeout ${JSON.stringify(value)} must be at least 1s`);
  return Math.ceil(ms / 1000);
}

/** Decodes a base64 AES-256 key; throws if it is not 32 bytes. */
export function decodeKey(base64: string): Buffer {
  const key = Buffer.from(base64.trim(), 'base64');
  if (key.length !== 32) throw new Error(`the topology encryption key must be base64 of 32 bytes, got ${key.length} bytes`);
  return key;
}

/**
 * Seals an endpoint: base64(nonce(12) || ciphertext || tag(16)) with AES-256-GCM, nonce = HMAC-SHA256(key,
 * plaintext)[0..12] (deterministic, see the module comment).
 */
export function sealEndpointDeterministic(plaintext: string, key: Buffer): string {
  const nonce = createHmac('sha256', key).update('harikube-endpoint-nonce\0').update(plaintext).digest().subarray(0, NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64');
}

/** True when an endpoint carries a password (and so should not sit in a TopologyConfig in plaintext). */
export function hasCredentials(endpoint: string): boolean {
  try {
    const e = parseEndpoint(endpoint);
    return (e.kind === 'postgres' || e.kind === 'mysql') && e.password !== '';
  } catch {
    return false;
  }
}

/** Builds the TopologyConfig object from resolved values (pure; validated by `topologyConfig()`). */
export function buildAppTopologyConfig(
  name: string,
  namespace: string,
  args: { position: number; targetSecret?: string; labels?: Record<string, string>; encryption?: { decryptSecret: string }; preEncrypted?: { decryptSecret: string } },
  rules: BackendRule[],
  key?: Buffer,
): TopologyConfigObject {
  if (args.encryption && args.preEncrypted) throw new Error(`AppTopology ${namespace}/${name}: use encryption or preEncrypted, not both`);
  if (args.encryption) {
    // Validate the plaintext rules first: after sealing, the validator can no longer see the endpoints.
    topologyConfig({ name, namespace, position: args.position, backends: rules, targetSecret: args.targetSecret, labels: args.labels });
    if (!key) throw new Error(`AppTopology ${namespace}/${name}: encryption needs a key`);
    rules = rules.map((r) => ({ ...r, endpoint: sealEndpointDeterministic(r.endpoint, key) }));
  }
  const decryptSecret = args.encryption?.decryptSecret ?? args.preEncrypted?.decryptSecret;
  return topologyConfig({ name, namespace, position: args.position, backends: rules, targetSecret: args.targetSecret, endpointDecryptSecret: decryptSecret, labels: args.labels });
}

export class AppTopology extends pulumi.ComponentResource {
  /** The TopologyConfig resource. */
  public readonly topologyConfig: k8s.apiextensions.CustomResource;
  /** The spec as applied (endpoints sealed when encryption is on; otherwise secret). */
  public readonly spec: pulumi.Output<TopologyConfigObject['spec']>;
  /** The rules, readable: backend kind, host and database per rule (the `harikube.info/routing` annotation). */
  public readonly routing: pulumi.Output<string>;

  constructor(name: string, args: AppTopologyArgs, opts?: pulumi.ComponentResourceOptions) {
    super('harikube:index:AppTopology', name, {}, opts);
    const resourceName = args.resourceName ?? name;
    const timeoutSeconds = readyTimeoutSeconds(`AppTopology ${resourceName}`, args.readyTimeout);
    const rules = pulumi.all(args.rules.map(({ endpoint, ...rest }) => pulumi.output(endpoint).apply((e): BackendRule => ({ ...rest, endpoint: e }))));
    const refs = pulumi.all([args.targetSecret, args.encryption?.decryptSecret, args.preEncrypted?.decryptSecret]);
    const built = pulumi.all([rules, args.namespace, args.encryption?.key ?? '', refs]).apply(([resolved, namespace, keyText, [targetSecret, sealedFor, preSealedFor]]) => {
      if (!args.encryption && !args.preEncrypted) {
        const exposed = resolved.filter((r) => hasCredentials(r.endpoint)).map((r) => r.name);
        if (exposed.length) {
          pulumi.log.warn(`AppTopology ${namespace}/${resourceName}: rules ${exposed.join(', ')} put credentials in the TopologyConfig in plaintext; set "encryption"`, this);
        }
      }
      const settings = {
        position: args.position,
        labels: args.labels,
        targetSecret,
        ...(sealedFor !== undefined ? { encryption: { decryptSecret: sealedFor } } : {}),
        ...(preSealedFor !== undefined ? { preEncrypted: { decryptSecret: preSealedFor } } : {}),
      };
      return buildAppTopologyConfig(resourceName, namespace, settings, resolved, args.encryption ? decodeKey(keyText) : undefined);
    });
    // Sealed endpoints are ciphertext: publish them unencrypted so previews show which rules changed.
    // Without encryption the spec keeps the secrecy of its endpoints.
    const spec = built.apply((o) => o.spec);
    this.spec = args.encryption || args.preEncrypted ? pulumi.unsecret(spec) : spec;
    // What reviewers read in `pulumi preview --diff`: each rule's backend by kind, host and database. Built from
    // the plaintext endpoints and deliberately not secret: it holds no user, password or sealed text.
    this.routing = args.preEncrypted ? pulumi.output('') : pulumi.unsecret(rules.apply(describeRouting));

    this.topologyConfig = new k8s.apiextensions.CustomResource(
      `${name}-topologyconfig`,
      {
        apiVersion: 'harikube.info/v1',
        kind: 'TopologyConfig',
        metadata: {
          name: resourceName,
          namespace: args.namespace,
          labels: { 'app.kubernetes.io/managed-by': 'pulumi', ...args.labels },
          annotations: this.routing.apply((routing) => ({
            ...(routing ? { [ROUTING_ANNOTATION]: routing } : {}),
            ...(args.waitForReady === false ? {} : { [WAIT_FOR_ANNOTATION]: APP_TOPOLOGY_WAIT_FOR }),
            ...(args.waitForReady === false || timeoutSeconds === undefined ? {} : { [TIMEOUT_ANNOTATION]: String(timeoutSeconds) }),
          })),
        },
        // Sealed: a Pulumi secret on the resource, so a preview shows `[secret]` where a changed endpoint would
        // otherwise print as a character diff of two ciphertexts; the routing annotation says what changed.
        spec: args.encryption || args.preEncrypted ? pulumi.secret(this.spec) : this.spec,
      },
      // e.g. the CRD and the operator, when the caller passes them as the component's dependsOn
      { parent: this, dependsOn: inheritedDependsOn(opts) },
    );
    this.registerOutputs({ spec: this.spec, routing: this.routing });
  }
}

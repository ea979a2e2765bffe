/**
 * `Topology`: one middleware layer's routing, declared as typed rules and compiled (by the middleware's own
 * compiler and validator) into two objects split by secrecy:
 *
 * - ConfigMap `<name>-routing`: the routing table (rule -> match -> backend kind/target/keyed fingerprint).
 *   Not secret, so `pulumi preview --diff` shows routing changes rule by rule.
 * - Secret `<name>-topology`: `topology.yaml` (endpoints with credentials), inline TLS material, and the
 *   default endpoint. Its data is a Pulumi secret.
 *
 * `hash` is an HMAC of the Secret's content under a random key kept (as a secret) in state: it changes exactly
 * when what the middleware reads changes. `restartHash` covers only what the middleware reads when it starts
 * (the default endpoint, an environment variable, and rules' TLS files, read when a backend opens): it sits
 * unencrypted in the Deployment's pod template, rolling the pods when it changes, without giving anyone an
 * offline oracle for guessing a weak password. A routing change alone (`topology.yaml`) is hot-reloaded by
 * the middleware from the mounted Secret and leaves the Deployment as it is.
 */
import * as pulumi from '@pulumi/pulumi';
import * as k8s from '@pulumi/kubernetes';
import * as random from '@pulumi/random';
import type { BackendRule, BackendTLS, MigrationSettings } from '../middleware/src/topology/schema.js';
import { TopologyValidationError, validateTopology } from '../middleware/src/topology/validate.js';
import {
  compileTopology,
  ROUTING_TABLE_KEY,
  topologyHash,
  type DeclaredRule,
  type RoutingTable,
} from '../middleware/src/topology/compile.js';
import { standardLabels, dnsLabel } from './kube.js';
import { BACKEND_TLS_DIR, DEFAULT_SQLITE_ENDPOINT, TOPOLOGY_MOUNT_PATH } from './paths.js';
import { SECRET_DATA_KEY, tlsMaterialFiles, type RuleTlsMaterial } from '../middleware/src/topology/secret-layout.js';
import { withStandInEndpoints } from '../middleware/src/topology/stand-in-endpoints.js';

/** One rule: a topology `BackendRule` whose endpoint (and TLS material) may be secret inputs. */
export interface TopologyRuleArgs extends Omit<BackendRule, 'endpoint'> {
  /** The backend's endpoint, e.g. `PostgresCluster.endpointFor("configmaps")` or another layer's `Middleware.endpoint`. */
  endpoint: pulumi.Input<string>;
  /** Non-secret name of the backend shown in the routing table (e.g. `postgres/main/configmaps`). */
  target?: string;
  /** Inline PEM material for the backend connection; compiled into files of the topology Secret. */
  tlsMaterial?: { ca?: pulumi.Input<string>; cert?: pulumi.Input<string>; key?: pulumi.Input<string> };
  /**
   * A Secret (`ca.crt`, `tls.crt`, `tls.key`, e.g. issued by cert-manager) mounted for this rule's backend
   * connection; the rule's `backendTLS` points at its files. The Secret must be in the middleware's namespace.
   */
  tlsSecretName?: pulumi.Input<string>;
}

export interface TopologyArgs {
  /** Namespace of the ConfigMap and Secret: the middleware layer's namespace. */
  namespace: pulumi.Input<string>;
  /** Prefix of the ConfigMap/Secret names; defaults to the component name. */
  objectName?: string;
  /** Rules in order: the first match wins. */
  rules: TopologyRuleArgs[];
  /** The layer's default backend (`--endpoint`), where unmatched keys and the meta store live; a SQLite file on the data volume by default. */
  defaultEndpoint?: pulumi.Input<string>;
  /** Non-secret name of the default backend for the routing table. */
  defaultTarget?: string;
  /**
   * Online migration settings of the document: `keysPerSecond` caps how fast keys move when a routing change
   * sends existing keys to another backend (overrides the middleware's `--migration-rate`; 0: no limit).
   */
  migration?: MigrationSettings;
}

/** A Secret to mount for one rule's backend TLS. */
export interface BackendTlsMount {
  /** Rule name (also the directory under `BACKEND_TLS_DIR`). */
  rule: string;
  secretName: pulumi.Input<string>;
  mountPath: string;
}

/** Data key of the default endpoint in the topology Secret. */
export const DEFAULT_ENDPOINT_KEY = 'default-endpoint';

/**
 * Checks everything about the rules that does not depend on endpoint values (names, match blocks, regexps,
 * durations), with stand-in endpoints, so a bad declaration fails at `pulumi preview` even when the endpoints
 * are not known yet.
 */
export function checkRuleShapes(rules: Array<Omit<TopologyRuleArgs, 'endpoint'>>): void {
  // Every endpoint its own: unknown inputs cannot be compared (the compiler checks the real ones).
  const standIns = withStandInEndpoints(
    rules.map(({ target: _t, tlsMaterial: _m, tlsSecretName: _s, ...r }) => r),
    (_rule, index) => index,
  );
  const result = validateTopology({ backends: standIns });
  const issues = result.ok ? [] : result.issues.filter((i) => i.field !== 'endpoint');
  if (issues.length) throw new TopologyValidationError('Topology declaration', issues);
  for (const r of rules) {
    if (r.tlsSecretName !== undefined && !SECRET_DATA_KEY.test(r.name)) {
      throw new TopologyValidationError('Topology declaration', [{ rule: r.name, field: 'name', message: 'a rule with tlsSecretName needs a name usable as a directory (letters, digits, ".", "_", "-")' }]);
    }
  }
}

/** The rule's `backendTLS` when its TLS comes from a mounted Secret. */
export function mountedTls(rule: string, existing?: BackendTLS): BackendTLS {
  const dir = `${BACKEND_TLS_DIR}/${rule}`;
  return { ...existing, caFile: `${dir}/ca.crt`, certFile: `${dir}/tls.crt`, keyFile: `${dir}/tls.key` };
}

export class Topology extends pulumi.ComponentResource {
  /** The routing table (not secret). */
  public readonly routing: pulumi.Output<RoutingTable>;
  /** The routing table as the ConfigMap holds it (not secret). */
  public readonly routingYaml: pulumi.Output<string>;
  /** Keyed hash of the compiled topology (not secret): changes when anything the middleware reads changes. */
  public readonly hash: pulumi.Output<string>;
  /**
   * Keyed hash (not secret) of what the middleware reads only when it starts: the default endpoint and the
   * rules' inline TLS files. Not `topology.yaml`, which it hot-reloads. Goes into the pod template.
   */
  public readonly restartHash: pulumi.Output<string>;
  /** The routing ConfigMap. */
  public readonly configMap: k8s.core.v1.ConfigMap;
  /** The Secret with the document, TLS material and the default endpoint. */
  public readonly secret: k8s.core.v1.Secret;
  /** Name of `secret`. */
  public readonly secretName: pulumi.Output<string>;
  /**
   * The same name as a plain string. The Middleware refers to the Secret by it (ordered by `dependsOn`), so
   * that when the provider replaces the Secret on a data change (it does unless `enableSecretMutable` is
   * set), the engine does not replace the Deployment with it.
   */
  public readonly secretObjectName: string;
  /** Where the middleware must mount `secret` (paths in the document point there). */
  public readonly mountPath = TOPOLOGY_MOUNT_PATH;
  /** Secrets the middleware must mount for rules' backend TLS. */
  public readonly tlsMounts: BackendTlsMount[];
  /** The full compiled document (secret). */
  public readonly documentYaml: pulumi.Output<string>;

  constructor(name: string, args: TopologyArgs, opts?: pulumi.ComponentResourceOptions) {
    super('harikube:index:Topology', name, {}, opts);
    checkRuleShapes(args.rules);
    const objectName = dnsLabel(args.objectName ?? name);
    const labels = standardLabels('harikube-topology', objectName, 'topology');

    // Keys the fingerprints and the rollout hash; lives only in (encrypted) state.
    const hashKey = new random.RandomPassword(`${name}-hash-key`, { length: 48, special: false }, { parent: this });

    this.tlsMounts = args.rules
      .filter((r) => r.tlsSecretName !== undefined)
      .map((r) => ({ rule: r.name, secretName: r.tlsSecretName!, mountPath: `${BACKEND_TLS_DIR}/${r.name}` }));

    const declared: pulumi.Output<DeclaredRule[]> = pulumi.all(
      args.rules.map(({ endpoint, tlsMaterial, tlsSecretName, ...rest }) =>
        pulumi.all([endpoint, tlsMaterial ?? {}]).apply(([e, m]): DeclaredRule => {
          const rule: DeclaredRule = { ...rest, endpoint: e };
          if (tlsSecretName !== undefined) rule.backendTLS = mountedTls(rest.name, rest.backendTLS);
          const material = m as { ca?: string; cert?: string; key?: string };
          if (material.ca !== undefined || material.cert !== undefined || material.key !== undefined) rule.tlsMaterial = material;
          return rule;
        }),
      ),
    );
    const defaultEndpoint = pulumi.output(args.defaultEndpoint ?? DEFAULT_SQLITE_ENDPOINT);
    const compiled = pulumi.all([declared, hashKey.result, defaultEndpoint]).apply(([rules, key, def]) => {
      const c = compileTopology(rules, { mountPath: TOPOLOGY_MOUNT_PATH, fingerprintKey: key, defaultEndpoint: def, defaultTarget: args.defaultTarget, migration: args.migration });
      const secretData = { ...c.secretData, [DEFAULT_ENDPOINT_KEY]: def };
      return { ...c, secretData, hash: topologyHash(key, secretData) };
    });
    // From its own inputs only (not from `compiled`): an Output carries the resources its inputs came from,
    // and the pod template must not depend on the resources behind every rule's endpoint.
    const materials: pulumi.Output<RuleTlsMaterial[]> = pulumi.all(args.rules.map((r) => pulumi.output(r.tlsMaterial ?? {}) as pulumi.Output<RuleTlsMaterial>));
    const readAtStart = pulumi.all([hashKey.result, defaultEndpoint, materials]).apply(([key, def, mats]) => {
      const data: Record<string, string> = { [DEFAULT_ENDPOINT_KEY]: def };
      args.rules.forEach((r, i) => {
        for (const f of tlsMaterialFiles(r.name, mats[i])) data[f.key] = f.pem;
      });
      return topologyHash(key, data);
    });

    // unsecret: these are computed from secrets but hold none (compile.ts keeps endpoints out of the routing
    // table; the hash is keyed). The component tests check both claims.
    this.routing = pulumi.unsecret(compiled.apply((c) => c.routing));
    this.routingYaml = pulumi.unsecret(compiled.apply((c) => c.routingYaml));
    this.hash = pulumi.unsecret(compiled.apply((c) => c.hash));
    this.restartHash = pulumi.unsecret(readAtStart);
    this.documentYaml = pulumi.secret(compiled.apply((c) => c.documentYaml));

    this.configMap = new k8s.core.v1.ConfigMap(
      `${name}-routing`,
      { metadata: { name: `${objectName}-routing`, namespace: args.namespace, labels }, data: { [ROUTING_TABLE_KEY]: this.routingYaml } },
      { parent: this },
    );
    this.secretObjectName = `${objectName}-topology`;
    this.secret = new k8s.core.v1.Secret(
      `${name}-topology`,
      {
        metadata: { name: this.secretObjectName, namespace: args.namespace, labels },
        type: 'Opaque',
        stringData: pulumi.secret(compiled.apply((c) => c.secretData)),
      },
      { parent: this },
    );
    this.secretName = this.secret.metadata.name;
    this.registerOutputs({ routing: this.routing, hash: this.hash, restartHash: this.restartHash, secretName: this.secretName, configMap: this.configMap.metadata.name });
  }
}

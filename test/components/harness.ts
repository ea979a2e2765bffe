/**
 * Pulumi mocks for component tests: records every registered resource with what the engine would see
 * (type, name, URN, parent URN, dependency URNs, inputs with secret markers intact), returns recognizable fake
 * credentials for random passwords so tests can search for leaks, and validates rendered manifests with
 * kubernetes-models.
 *
 * Call `setupMocks()` before importing any component module (dynamic `import()` after it), as Pulumi requires.
 */
import * as pulumi from '@pulumi/pulumi';
import { createHash } from 'node:crypto';

export interface Recorded {
  type: string;
  name: string;
  urn: string;
  /** URN of the parent ('' for none). */
  parent: string;
  /** URNs this resource depends on (explicit `dependsOn` and through its inputs). */
  dependencies: string[];
  /**
   * Per top-level input property, the URNs its value came from (not `dependsOn`). What the engine uses to
   * decide whether a replaced resource drags this one into a replacement.
   */
  propertyDependencies: Record<string, string[]>;
  custom: boolean;
  remote: boolean;
  /** Provider reference (`urn::id`) the engine would use, '' for the default provider. */
  provider: string;
  /** Inputs as the engine receives them; secrets are `{ [SIG]: SECRET_SIG, value }` wrappers. */
  inputs: any;
  /** Inputs with secret wrappers removed. */
  plain: any;
}

export interface MockOptions {
  project?: string;
  stack?: string;
  preview?: boolean;
  /** Config values, `project:key` -> value (objects are JSON-encoded as the engine would). */
  config?: Record<string, unknown>;
  /** Outputs returned for StackReferences, by referenced stack name. */
  stackOutputs?: Record<string, Record<string, unknown>>;
}

const SIG = '4dabf18193072939515e22adb298388d';
const SECRET_SIG = '1b47061264138c4ac30d75fd1eb44270';

export function isSecretWrapper(v: unknown): v is { value: unknown } {
  return !!v && typeof v === 'object' && (v as Record<string, unknown>)[SIG] === SECRET_SIG;
}

export function unwrapSecrets(v: unknown): any {
  if (isSecretWrapper(v)) return unwrapSecrets(v.value);
  if (Array.isArray(v)) return v.map(unwrapSecrets);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrapSecrets(x)]));
  return v;
}

export function containsSecret(v: unknown): boolean {
  if (isSecretWrapper(v)) return true;
  if (Array.isArray(v)) return v.some(containsSecret);
  if (v && typeof v === 'object') return Object.values(v).some(containsSecret);
  return false;
}

export interface Harness {
  resources: Recorded[];
  /** Fake credential values the mocks handed out (random passwords and bytes). */
  credentials: string[];
  /** The fake value handed out to the random resource of that name. */
  credentialOf(name: string): string;
  /** Waits until every registration so far has been answered. */
  settle(): Promise<void>;
  ofType(type: string, under?: string): Recorded[];
  one(type: string, name: string): Recorded;
  /** Resources whose URN chain is under the component with this URN (children, grandchildren...). */
  under(componentUrn: string): Recorded[];
}

let active: Harness | undefined;

function propertyDependenciesOf(req: any): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  req?.getPropertydependenciesMap?.().forEach((deps: any, key: string) => {
    out[key] = deps.getUrnsList();
  });
  return out;
}

function fakePassword(name: string): string {
  return `Pw${createHash('sha256').update(name).digest('hex').slice(0, 20)}Zz`;
}

export async function setupMocks(opts: MockOptions = {}): Promise<Harness> {
  if (active) return active;
  const resources: Recorded[] = [];
  const credentials: string[] = [];
  const byName = new Map<string, string>();
  let pending = 0;
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        const inputs = unwrapSecrets(args.inputs);
        let state: Record<string, unknown> = { ...args.inputs };
        if (args.type === 'random:index/randomPassword:RandomPassword') {
          const result = fakePassword(args.name);
          credentials.push(result);
          byName.set(args.name, result);
          state = { ...state, result };
        } else if (args.type === 'random:index/randomBytes:RandomBytes') {
          const bytes = createHash('sha256').update(args.name).digest().subarray(0, inputs.length ?? 32);
          credentials.push(bytes.toString('base64'), bytes.toString('hex'));
          byName.set(args.name, bytes.toString('base64'));
          state = { ...state, base64: bytes.toString('base64'), hex: bytes.toString('hex') };
        } else if (args.type === 'docker-build:index:Image') {
          state = { ...state, digest: `sha256:${createHash('sha256').update(args.name).digest('hex')}`, ref: `${inputs.tags?.[0]}@sha256:fake` };
        } else if (args.type === 'pulumi:pulumi:StackReference') {
          state = { ...state, outputs: opts.stackOutputs?.[inputs.name] ?? {}, secretOutputNames: [] };
        } else if (args.type.startsWith('kubernetes:') && inputs.metadata && !inputs.metadata.name) {
          state = { ...state, metadata: { ...args.inputs.metadata, name: `${args.name}-a1b2c3` } };
        }
        return { id: `${args.name}-id`, state };
      },
      call(args) {
        return args.inputs;
      },
    },
    opts.project ?? 'harikube',
    opts.stack ?? 'test',
    opts.preview ?? false,
  );
  if (opts.config) {
    const all: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.config)) all[k] = typeof v === 'string' ? v : JSON.stringify(v);
    pulumi.runtime.setAllConfig(all);
  }
  const monitor = pulumi.runtime.getMonitor() as any;
  // registerResource for resources the program creates, readResource for ones it reads (StackReference).
  for (const method of ['registerResource', 'readResource'] as const) {
    const original = monitor[method].bind(monitor);
    monitor[method] = (req: any, callback: (err: unknown, resp: any) => void) => {
      pending++;
      const rec: Recorded = {
        type: req.getType(),
        name: req.getName(),
        urn: '',
        parent: req.getParent(),
        dependencies: req.getDependenciesList(),
        propertyDependencies: propertyDependenciesOf(method === 'registerResource' ? req : undefined),
        custom: method === 'readResource' || req.getCustom(),
        remote: method === 'registerResource' && req.getRemote(),
        provider: req.getProvider?.() ?? '',
        inputs: pulumi.runtime.deserializeProperties(method === 'readResource' ? req.getProperties() : req.getObject()),
        plain: undefined,
      };
      rec.plain = unwrapSecrets(rec.inputs);
      resources.push(rec);
      return original(req, (err: unknown, resp: any) => {
        rec.urn = resp?.getUrn?.() ?? '';
        pending--;
        callback(err, resp);
      });
    };
  }
  const harness: Harness = {
    resources,
    credentials,
    credentialOf(name) {
      const v = byName.get(name);
      if (v === undefined) throw new Error(`no random resource named ${name}`);
      return v;
    },
    async settle() {
      // Quiet for 10 ticks: apply chains resolve in bursts, and a loaded machine leaves gaps between them.
      let stable = 0;
      let last = -1;
      while (stable < 10) {
        await new Promise((r) => setTimeout(r, 20));
        if (pending === 0 && resources.length === last) stable++;
        else stable = 0;
        last = resources.length;
      }
    },
    ofType(type, under) {
      return resources.filter((r) => r.type === type && (!under || isUnder(r, under)));
    },
    one(type, name) {
      const found = resources.filter((r) => r.type === type && r.name === name);
      if (found.length !== 1) throw new Error(`expected one ${type} named ${name}, found ${found.length}: ${resources.map((r) => `${r.type}::${r.name}`).join(', ')}`);
      return found[0]!;
    },
    under(componentUrn) {
      return resources.filter((r) => isUnder(r, componentUrn));
    },
  };
  function isUnder(r: Recorded, urn: string): boolean {
    for (let p = r.parent; p; p = resources.find((x) => x.urn === p)?.parent ?? '') if (p === urn) return true;
    return false;
  }
  active = harness;
  return harness;
}

/** The value of an Output (known values only: mocks run as an update unless asked otherwise). */
export function valueOf<T>(o: pulumi.Input<T>): Promise<T> {
  return (pulumi.output(o) as unknown as { promise(): Promise<T> }).promise();
}

/** Every string inside a value. */
export function strings(v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) v.forEach((x) => strings(x, out));
  else if (v && typeof v === 'object') Object.values(v).forEach((x) => strings(x, out));
  return out;
}

const MODEL_PATHS: Record<string, string> = {
  'apps/v1/Deployment': 'kubernetes-models/apps/v1/Deployment',
  'apps/v1/StatefulSet': 'kubernetes-models/apps/v1/StatefulSet',
  'v1/Service': 'kubernetes-models/v1/Service',
  'v1/ConfigMap': 'kubernetes-models/v1/ConfigMap',
  'v1/Secret': 'kubernetes-models/v1/Secret',
  'v1/Namespace': 'kubernetes-models/v1/Namespace',
  'v1/ServiceAccount': 'kubernetes-models/v1/ServiceAccount',
  'v1/PersistentVolumeClaim': 'kubernetes-models/v1/PersistentVolumeClaim',
  'networking.k8s.io/v1/NetworkPolicy': 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy',
  'policy/v1/PodDisruptionBudget': 'kubernetes-models/policy/v1/PodDisruptionBudget',
  'rbac.authorization.k8s.io/v1/ClusterRole': 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole',
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding',
  'rbac.authorization.k8s.io/v1/Role': 'kubernetes-models/rbac.authorization.k8s.io/v1/Role',
  'rbac.authorization.k8s.io/v1/RoleBinding': 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding',
  'apiextensions.k8s.io/v1/CustomResourceDefinition': 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition',
};

/**
 * Validates every built-in Kubernetes object among `records` against the Kubernetes schema (kubernetes-models).
 * Returns how many were validated per kind; throws naming the object and the schema error.
 */
export async function validateManifests(records: Recorded[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const r of records) {
    if (!r.custom || !r.type.startsWith('kubernetes:') || typeof r.plain?.kind !== 'string') continue;
    const key = `${r.plain.apiVersion}/${r.plain.kind}`;
    const modelPath = MODEL_PATHS[key];
    if (!modelPath) continue;
    const mod = (await import(modelPath)) as Record<string, new (data: unknown) => { validate(): void }>;
    const Model = mod[r.plain.kind]!;
    try {
      new Model(r.plain).validate();
    } catch (e) {
      throw new Error(`${key} ${r.name} does not validate: ${(e as Error).message}`);
    }
    counts[r.plain.kind] = (counts[r.plain.kind] ?? 0) + 1;
  }
  return counts;
}

/** Kinds of custom resources (`apiVersion/kind`) created through `kubernetes:apiextensions.k8s.io:CustomResource`-style types. */
export function kindOf(r: Recorded): string {
  return `${r.plain?.apiVersion}/${r.plain?.kind}`;
}

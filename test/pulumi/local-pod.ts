/**
 * A Deployment's container run as a local process, set up the way the kubelet would start it: its args and
 * environment as declared (values from the Secrets and ConfigMaps they reference, the downward API's pod
 * name and namespace), its Secret and ConfigMap volumes written as files, and every container path moved to a
 * local directory. Addresses move to loopback ports through `rewriteArg`. The entry is the repository's CLI
 * (support/cli.ts: the compiled one under npm test, as the image runs it); node flags may go before it (for example
 * the cluster DNS stand-in, cluster-dns.ts). Only loopback addresses: the container's 0.0.0.0 binds are rewritten
 * by the caller, and the helper refuses to start while one is left.
 */
import { ServerProcess } from '../support/child.js';
import { cliArgsWithPreloads } from '../support/cli.js';
import { kubeCall, type KubeAccess } from '../support/kube-request.js';
import { preparePod } from '../support/local-kubelet.js';
import { REPO_ROOT } from './harness.js';


export interface LocalPodOptions {
  access: KubeAccess;
  /** The Deployment as the API server returns it; its first container runs. */
  deployment: any;
  /** Container path -> local directory; every mounted path needs one. Created when missing. */
  paths: Record<string, string>;
  /** The pod's name (downward API `metadata.name`). */
  podName: string;
  /** Rewrites one container arg (addresses to loopback ports); identity by default. */
  rewriteArg?: (arg: string) => string;
  /** Args appended after the container's (e.g. the operator's --kubeconfig: it has no service account here). */
  extraArgs?: string[];
  /** Environment added to the container's (test plumbing only, e.g. HARIKUBE_TEST_CLUSTER_DNS). */
  extraEnv?: Record<string, string>;
}

export interface PodCommand {
  args: string[];
  env: Record<string, string>;
}

/** `text` with every container path of `paths` replaced by its local directory. */
export function localPaths(paths: Record<string, string>): (text: string) => string {
  const keys = Object.keys(paths).sort((a, b) => b.length - a.length);
  if (!keys.length) return (t) => t;
  // whole path segments only: /tmp, /tmp/x, but not /tmpfoo
  const re = new RegExp(`(${keys.map((k) => k.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})(?![A-Za-z0-9._-])`, 'g');
  return (text) => text.replace(re, (p) => paths[p]!);
}

const decode = (v: string) => Buffer.from(v, 'base64').toString('utf8');

/** The container's args and environment as the kubelet would give them, volumes written to their local paths. */
export async function podCommand(o: LocalPodOptions): Promise<PodCommand> {
  const ns: string = o.deployment.metadata.namespace;
  const local = localPaths(o.paths);
  const get = (kind: 'secrets' | 'configmaps', name: string) => kubeCall(o.access, 'GET', `/api/v1/namespaces/${ns}/${kind}/${name}`);
  // their content names container paths, so those move too
  const { env, args: declared } = await preparePod({
    deployment: o.deployment,
    paths: o.paths,
    podName: o.podName,
    localize: local,
    sources: {
      secret: async (name) => Object.fromEntries(Object.entries<string>((await get('secrets', name)).data ?? {}).map(([k, v]) => [k, Buffer.from(local(decode(v)))])),
      configMap: async (name) => Object.fromEntries(Object.entries<string>((await get('configmaps', name)).data ?? {}).map(([k, v]) => [k, local(v)])),
    },
  });
  const args = [...declared.map((a: string) => local((o.rewriteArg ?? ((x: string) => x))(a))), ...(o.extraArgs ?? [])];
  const wide = args.find((a) => /(^|[=\s])(0\.0\.0\.0)?:\d+$/.test(a) && !/127\.0\.0\.1:\d+$/.test(a));
  if (wide) throw new Error(`${o.deployment.metadata.name}: arg ${wide} would listen beyond loopback; rewrite it to 127.0.0.1`);
  return { args, env: { ...env, ...(o.extraEnv ?? {}) } };
}

/**
 * Runs `command` (from {@link podCommand}, computed while the API server still answers) locally and waits
 * until `ready` says so (bounded); `nodeArgs` go before the CLI.
 */
export async function runLocalPod(label: string, command: PodCommand, nodeArgs: string[], ready: () => Promise<boolean>): Promise<ServerProcess> {
  const proc = new ServerProcess(label, process.execPath, [...cliArgsWithPreloads(nodeArgs), ...command.args], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...command.env },
  });
  await proc.waitReady(`${label} to be ready`, ready, { timeoutMs: 90_000, intervalMs: 250 });
  return proc;
}

/**
 * `harikube operator [flags]` runs the TopologyConfig operator; `harikube operator crd` prints the CRD.
 * Flags follow controller-runtime's names so existing manifests (`--leader-elect`,
 * `--health-probe-bind-address=:8081`) keep working.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { configureLogging, logger, type LogFormat } from '../log.js';
import { parseDuration } from '../topology/duration.js';
import { topologyConfigCrd } from '../topology/crd.js';
import { TopologyConfigController } from './controller.js';
import { flagHelp, FlagError, parseFlags, type FlagSpec } from './flags.js';
import { parseBindAddress, startHttpServer, type RunningServer } from './http.js';
import { kubeClient } from './kube-client.js';
import { metricsAuthorizer } from './metrics-auth.js';

const IN_CLUSTER_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

const FLAGS: Record<string, FlagSpec> = {
  kubeconfig: { type: 'string', help: 'kubeconfig file; default: in-cluster config, then $KUBECONFIG, then ~/.kube/config' },
  'leader-elect': { type: 'boolean', default: true, help: 'elect a leader on a Lease so only one replica writes' },
  'leader-election-namespace': {
    type: 'string',
    help: "namespace of the Lease; default: the pod's namespace, $POD_NAMESPACE, else harikube",
  },
  'lease-name': { type: 'string', default: 'harikube-topology-operator', help: 'name of the Lease' },
  'lease-duration': { type: 'string', default: '15s', help: 'how long a Lease holds without renewal' },
  'renew-deadline': { type: 'string', default: '10s', help: 'the leader steps down when it cannot renew for this long' },
  'retry-period': { type: 'string', default: '2s', help: 'how often to try to acquire or renew the Lease' },
  identity: { type: 'string', help: 'this replica in the Lease and Events; default: $POD_NAME or hostname, plus a random suffix' },
  'health-probe-bind-address': { type: 'string', default: ':8081', help: 'address of /healthz and /readyz ("0" disables)' },
  'metrics-bind-address': { type: 'string', default: ':8080', help: 'address of /metrics ("0" disables; may equal the probe address)' },
  'resync-period': { type: 'string', default: '10m', help: 'reconcile every topology Secret again this often' },
  'secret-namespaces': {
    type: 'string',
    default: '',
    help: 'comma-separated namespaces whose Secrets (target and decrypt Secrets) the operator uses and watches; empty: all namespaces (needs Secret access cluster-wide)',
  },
  'wait-for-middleware': {
    type: 'boolean',
    default: true,
    help: 'Active only once every middleware reading the target Secret reports it applied the rules (false: Active once written)',
  },
  'stuck-reconcile-timeout': { type: 'string', default: '5m', help: '/healthz fails when one reconcile runs longer than this' },
  'api-lost-timeout': { type: 'string', default: '2m', help: '/healthz fails when no list or watch reached the API server for this long' },
  'metrics-auth': {
    type: 'boolean',
    default: false,
    help: '/metrics requires a bearer token that a TokenReview accepts and a SubjectAccessReview allows "get" on /metrics for (ClusterRole metrics-reader)',
  },
  'metrics-cert-dir': { type: 'string', default: '', help: 'serve /metrics over HTTPS with tls.crt and tls.key from this directory' },
  'log-format': { type: 'string', default: 'plain', help: 'plain or json' },
  debug: { type: 'boolean', default: false, help: 'log debug records' },
  help: { type: 'boolean', default: false, help: 'show this help' },
};

function usage(): string {
  return [
    'usage: harikube operator [flags]     run the TopologyConfig operator',
    '       harikube operator crd         print the topologyconfigs.harikube.info CRD as YAML',
    '',
    flagHelp(FLAGS),
  ].join('\n');
}

function durationMs(flag: string, value: unknown): number {
  try {
    return parseDuration(String(value));
  } catch (e) {
    throw new FlagError(`--${flag}: ${(e as Error).message}`);
  }
}

function defaultNamespace(): string {
  try {
    return readFileSync(IN_CLUSTER_NAMESPACE_FILE, 'utf8').trim() || 'harikube';
  } catch {
    return process.env.POD_NAMESPACE || 'harikube';
  }
}

function loadKubeConfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else kc.loadFromDefault();
  return kc;
}

/** Resolves on the first SIGTERM or SIGINT. */
function shutdownSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: string) => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      resolve(sig);
    };
    const onTerm = () => on('SIGTERM');
    const onInt = () => on('SIGINT');
    process.once('SIGTERM', onTerm);
    process.once('SIGINT', onInt);
  });
}

export async function main(args: string[]): Promise<number> {
  if (args[0] === 'crd') {
    process.stdout.write(stringify(topologyConfigCrd()));
    return 0;
  }
  let parsed: ReturnType<typeof parseFlags>;
  let settings: {
    leaseDurationMs: number;
    renewDeadlineMs: number;
    retryPeriodMs: number;
    resyncMs: number;
    health?: { host?: string; port: number };
    metrics?: { host?: string; port: number };
    stuckReconcileMs: number;
    apiLostMs: number;
    secretNamespaces: string[];
  };
  try {
    parsed = parseFlags(args, FLAGS);
    if (parsed.flags.help) {
      process.stdout.write(usage() + '\n');
      return 0;
    }
    if (parsed.positional.length) throw new FlagError(`unexpected argument "${parsed.positional[0]}"`);
    const format = parsed.flags['log-format'];
    if (format !== 'plain' && format !== 'json') throw new FlagError(`--log-format must be plain or json, not "${format}"`);
    configureLogging({ format: format as LogFormat, level: parsed.flags.debug ? 'debug' : 'info' });
    settings = {
      leaseDurationMs: durationMs('lease-duration', parsed.flags['lease-duration']),
      renewDeadlineMs: durationMs('renew-deadline', parsed.flags['renew-deadline']),
      retryPeriodMs: durationMs('retry-period', parsed.flags['retry-period']),
      resyncMs: durationMs('resync-period', parsed.flags['resync-period']),
      health: parseBindAddress(String(parsed.flags['health-probe-bind-address'])),
      metrics: parseBindAddress(String(parsed.flags['metrics-bind-address'])),
      stuckReconcileMs: durationMs('stuck-reconcile-timeout', parsed.flags['stuck-reconcile-timeout']),
      apiLostMs: durationMs('api-lost-timeout', parsed.flags['api-lost-timeout']),
      secretNamespaces: String(parsed.flags['secret-namespaces'] ?? '')
        .split(',')
        .map((n) => n.trim())
        .filter(Boolean),
    };
    for (const ns of settings.secretNamespaces) {
      if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns)) throw new FlagError(`--secret-namespaces: "${ns}" is not a namespace name`);
    }
    if (parsed.flags['metrics-auth'] && settings.health && settings.metrics && settings.health.port === settings.metrics.port && settings.health.host === settings.metrics.host) {
      throw new FlagError('--metrics-auth needs --metrics-bind-address apart from --health-probe-bind-address (probes carry no token)');
    }
    if (settings.renewDeadlineMs >= settings.leaseDurationMs) {
      throw new FlagError('--renew-deadline must be shorter than --lease-duration');
    }
    if (settings.retryPeriodMs >= settings.renewDeadlineMs) {
      throw new FlagError('--retry-period must be shorter than --renew-deadline');
    }
  } catch (e) {
    if (!(e instanceof FlagError) && !(e as Error).message.includes('bind address')) throw e;
    process.stderr.write(`harikube operator: ${(e as Error).message}\n\n${usage()}\n`);
    return 2;
  }
  const { flags } = parsed;
  const log = logger.child({ component: 'operator' });

  let kc: KubeConfig;
  try {
    kc = loadKubeConfig(flags.kubeconfig as string | undefined);
  } catch (e) {
    log.error('cannot load the Kubernetes client configuration', { error: e, kubeconfig: flags.kubeconfig });
    return 1;
  }
  const identity = String(flags.identity ?? `${process.env.POD_NAME || hostname()}_${randomBytes(4).toString('hex')}`);
  const client = kubeClient(kc, { userAgent: `harikube-operator/${identity}` });
  const operator = new TopologyConfigController({
    client,
    log,
    identity,
    resyncMs: settings.resyncMs,
    secretNamespaces: settings.secretNamespaces,
    waitForMiddleware: flags['wait-for-middleware'] !== false,
    stuckReconcileMs: settings.stuckReconcileMs,
    apiLostMs: settings.apiLostMs,
    leaderElection: flags['leader-elect']
      ? {
          namespace: String(flags['leader-election-namespace'] ?? defaultNamespace()),
          name: String(flags['lease-name']),
          leaseDurationMs: settings.leaseDurationMs,
          renewDeadlineMs: settings.renewDeadlineMs,
          retryPeriodMs: settings.retryPeriodMs,
        }
      : false,
  });

  const servers: RunningServer[] = [];
  const healthz = () => {
    const h = operator.health();
    return h.ok ? { ok: true, message: 'ok' } : { ok: false, message: `unhealthy: ${(h.detail.problems as string[]).join('; ')}` };
  };
  const readyz = () => {
    if (!operator.isReady()) return { ok: false, message: 'not ready: caches of TopologyConfigs and Secrets are not filled yet' };
    return { ok: true, message: operator.isLeader() ? 'ok (leader)' : 'ok (standby: not the leader)' };
  };
  try {
    const { health, metrics } = settings;
    const same = health && metrics && health.port === metrics.port && health.host === metrics.host;
    if (settings.health) servers.push(await startHttpServer(settings.health, { healthz, readyz, metrics: Boolean(same) }));
    if (settings.metrics && !same) {
      const certDir = String(flags['metrics-cert-dir'] ?? '');
      servers.push(
        await startHttpServer(settings.metrics, {
          metrics: true,
          ...(flags['metrics-auth'] ? { authorize: metricsAuthorizer(client, log) } : {}),
          ...(certDir ? { tls: { cert: readFileSync(path.join(certDir, 'tls.crt')), key: readFileSync(path.join(certDir, 'tls.key')) } } : {}),
        }),
      );
    }
  } catch (e) {
    log.error('cannot start the HTTP endpoints', { error: e });
    await Promise.all(servers.map((s) => s.close()));
    return 1;
  }

  const signal = shutdownSignal();
  operator.start();
  log.info('operator started', {
    identity,
    leaderElection: flags['leader-elect'] ? `${flags['leader-election-namespace'] ?? defaultNamespace()}/${flags['lease-name']}` : 'off',
    health: flags['health-probe-bind-address'],
    metrics: flags['metrics-bind-address'],
  });
  const sig = await signal;
  log.info('shutting down', { signal: sig });
  await operator.stop();
  await Promise.all(servers.map((s) => s.close()));
  log.info('stopped');
  return 0;
}

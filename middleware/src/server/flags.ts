/**
 * Flags of `harikube serve`: one table drives parsing, validation, `--help` and the README's flag list.
 * Names follow the existing product (kine-style) where one exists.
 */
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { parseDuration } from '../topology/duration.js';
import { redactEndpoint } from '../topology/endpoint.js';

interface FlagSpec {
  type: 'string' | 'boolean';
  default?: string;
  description: string;
}

/** The embedded default: a SQLite file next to the working directory. */
export const DEFAULT_ENDPOINT = 'sqlite://./db/state.db';

/**
 * Environment variables `serve` reads (the Pulumi components set them by these names): the default endpoint
 * keeps credentials off the command line; the pod's name and template hash come from the downward API.
 */
export const SERVE_ENV = {
  endpoint: 'HARIKUBE_ENDPOINT',
  topologyConfig: 'TOPOLOGY_CONFIG',
  topologyTlsDir: 'TOPOLOGY_CONFIG_TLS_DIR',
  podName: 'POD_NAME',
  podTemplateHash: 'POD_TEMPLATE_HASH',
} as const;

/** `--name` or `--name=value` of a serve flag: callers that build a command line name flags from the table. */
export function serveFlag(name: keyof typeof SERVE_FLAGS, value?: string | number): string {
  return value === undefined ? `--${name}` : `--${name}=${value}`;
}

export const SERVE_FLAGS = {
  'listen-address': { type: 'string', default: '127.0.0.1:2379', description: 'host:port the etcd gRPC API listens on.' },
  endpoint: {
    type: 'string',
    description:
      'Default backend (and meta store): sqlite://PATH, postgres://user:pass@host:port/db, mysql://user:pass@tcp(host:port)/db. Created if missing. Without the flag: $HARIKUBE_ENDPOINT (keeps credentials off the command line), else sqlite://./db/state.db.',
  },
  'ca-file': { type: 'string', description: 'CA bundle to verify the database server (TLS to the database).' },
  'cert-file': { type: 'string', description: 'Client certificate presented to the database.' },
  'key-file': { type: 'string', description: 'Key of --cert-file.' },
  'skip-verify': { type: 'boolean', description: 'Do not verify the database server certificate (testing only).' },
  'server-cert-file': { type: 'string', description: 'Certificate for serving clients over TLS (with --server-key-file).' },
  'server-key-file': { type: 'string', description: 'Key of --server-cert-file.' },
  'server-ca-file': { type: 'string', description: 'CA that client certificates must chain to; when set, clients must present one.' },
  'metrics-bind-address': {
    type: 'string',
    default: ':8080',
    description: 'host:port for /metrics (Prometheus), /healthz and /readyz; "0" disables.',
  },
  'log-format': { type: 'string', default: 'plain', description: 'Log format: plain or json.' },
  'watch-progress-notify-interval': {
    type: 'string',
    default: '5s',
    description: 'Interval of progress notifications to watchers that asked for them (progress_notify).',
  },
  'emulated-etcd-version': {
    type: 'string',
    default: '3.5.13',
    description: 'etcd version reported by Status; kube-apiserver uses watch progress requests from 3.5.13.',
  },
  'compact-interval': { type: 'string', default: '5m', description: 'Interval of automatic compaction; 0 disables it.' },
  'compact-min-retain': { type: 'string', default: '1000', description: 'Revisions automatic compaction always keeps.' },
  'compact-batch-size': { type: 'string', default: '1000', description: 'Rows deleted per compaction step.' },
  'compact-timeout': { type: 'string', default: '5s', description: 'Bound on one compaction step (10 ms at most in any case); a removal still running after 20 times this pauses until the next compaction.' },
  'query-timeout': {
    type: 'string',
    default: '30s',
    description:
      'Longest one statement on a PostgreSQL or MySQL database may take (a hung server or a silent network): the request then fails with Unavailable and the connection is replaced. 0: no limit.',
  },
  'read-cache-size': {
    type: 'string',
    default: '64',
    description:
      'MiB of newest rows of recently read keys kept in memory, so a Get needs no database round trip (exact: this middleware is the only writer of its databases); 0 disables it.',
  },
  'topology-config': {
    type: 'string',
    description:
      'Where routing rules come from: file://PATH, http(s)://URL or secret://NAMESPACE/NAME (a Secret read from the store itself). Without the flag: $TOPOLOGY_CONFIG. Unset: the topology in effect at the last run stays (none: everything on --endpoint).',
  },
  'migration-rate': {
    type: 'string',
    default: '2000',
    description:
      'Keys per second the online migration moves at most when a topology change routes existing keys to another backend (0: no limit). Lower it if API latency suffers while data moves.',
  },
  'topology-poll-interval': { type: 'string', default: '60s', description: 'How often an http(s):// topology is fetched.' },
  'topology-tls-dir': {
    type: 'string',
    description: 'Directory where TLS files shipped in a secret:// topology are written. Without the flag: $TOPOLOGY_CONFIG_TLS_DIR.',
  },
  'leader-elect': {
    type: 'boolean',
    description:
      'Run as one of several replicas on one shared default backend (PostgreSQL or MySQL): only the holder of a lease in that database serves; the others stand by (/readyz 503) and take over when it stops or its lease expires.',
  },
  'leader-elect-lease-duration': { type: 'string', default: '15s', description: 'How long the lease lasts without renewal before a standby takes over.' },
  'leader-elect-renew-interval': { type: 'string', default: '5s', description: 'How often the leader renews the lease and standbys check it.' },
  'leader-elect-identity': {
    type: 'string',
    description: 'This replica\'s name in the lease. Without the flag: $POD_NAME, else $HOSTNAME, else host name and process ID.',
  },
  'leader-elect-template': {
    type: 'string',
    description:
      'This replica\'s pod template (its pod-template-hash label). A leader hands the lease over to a live standby of another template that started after it (the new pod of a rolling update), which then becomes ready before the old pod goes. Without the flag: $POD_TEMPLATE_HASH; empty: no hand-over.',
  },
  debug: { type: 'boolean', description: 'Log at debug level.' },
  help: { type: 'boolean', description: 'Print this help.' },
} satisfies Record<string, FlagSpec>;

/**
 * The flags that say how to reach the default backend (the meta store); `harikube migrate verify` takes the
 * same ones, so an operator passes it exactly what the middleware was started with.
 */
export const DATABASE_FLAG_NAMES = ['endpoint', 'ca-file', 'cert-file', 'key-file', 'skip-verify', 'query-timeout'] as const;

/** How to reach the default backend. */
export interface DatabaseConfig {
  endpoint: string;
  /** TLS to the database; undefined when no TLS flag is given (the endpoint's own parameters decide). */
  backendTls?: { caFile?: string; certFile?: string; keyFile?: string; skipVerify?: boolean };
  /** Longest one statement on a database server may take; 0: no limit. */
  queryTimeoutMs: number;
}

export interface ServeConfig extends DatabaseConfig {
  listenHost: string;
  listenPort: number;
  serverTls?: { certFile: string; keyFile: string; caFile?: string };
  metrics?: { host: string; port: number };
  logFormat: 'plain' | 'json';
  progressNotifyMs: number;
  etcdVersion: string;
  compactIntervalMs: number;
  compactMinRetain: number;
  compactBatchSize: number;
  compactTimeoutMs: number;
  /** Bytes of the read cache (--read-cache-size, given in MiB); 0: none. */
  readCacheBytes: number;
  /** TOPOLOGY_CONFIG source spec; undefined: no source. */
  topologyConfig?: string;
  topologyPollMs: number;
  topologyTlsDir?: string;
  /** Keys per second the migration mover moves at most; 0: no limit. */
  migrationRate: number;
  /** Set with --leader-elect. */
  leaderElection?: { identity: string; leaseDurationMs: number; renewIntervalMs: number; template: string };
  debug: boolean;
  help: boolean;
}

export class FlagError extends Error {}

export function serveUsage(): string {
  const lines = ['usage: harikube serve [flags]', '', 'flags:'];
  for (const [name, spec] of Object.entries(SERVE_FLAGS) as [string, FlagSpec][]) {
    const def = spec.default !== undefined ? ` (default ${JSON.stringify(spec.default)})` : '';
    lines.push(`  --${name}${spec.type === 'string' ? ' VALUE' : ''}`, `      ${spec.description}${def}`);
  }
  return lines.join('\n');
}

function hostPort(flag: string, value: string, allowEmptyHost: boolean): { host: string; port: number } {
  const v = value.replace(/^[a-z]+:\/\//, '');
  const m = /^(\[[^\]]*\]|[^:]*):(\d+)$/.exec(v);
  if (!m || (!allowEmptyHost && !m[1])) throw new FlagError(`--${flag} "${value}": expected host:port, e.g. 127.0.0.1:2379`);
  const port = Number(m[2]);
  if (port > 65535) throw new FlagError(`--${flag} "${value}": port ${port} is out of range`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

function duration(flag: string, value: string): number {
  try {
    return parseDuration(value);
  } catch (e) {
    throw new FlagError(`--${flag}: ${(e as Error).message}`);
  }
}

function positive(flag: string, ms: number): number {
  if (ms <= 0) throw new FlagError(`--${flag} must be above 0`);
  return ms;
}

function count(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new FlagError(`--${flag} "${value}": expected a whole number >= ${min}`);
  return n;
}

function versionAtLeast(v: string, min: [number, number, number]): boolean {
  const parts = v.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const a = parts[i] ?? 0;
    if (a !== min[i]) return a > min[i]!;
  }
  return true;
}

function leaderElection(str: (name: keyof typeof SERVE_FLAGS) => string | undefined): ServeConfig['leaderElection'] {
  const leaseDurationMs = positive('leader-elect-lease-duration', duration('leader-elect-lease-duration', str('leader-elect-lease-duration')!));
  const renewIntervalMs = positive('leader-elect-renew-interval', duration('leader-elect-renew-interval', str('leader-elect-renew-interval')!));
  if (renewIntervalMs * 2 > leaseDurationMs) {
    throw new FlagError('--leader-elect-renew-interval must be at most half of --leader-elect-lease-duration (the leader renews at least twice per lease)');
  }
  const identity = str('leader-elect-identity') || process.env[SERVE_ENV.podName] || process.env.HOSTNAME || `${hostname()}-${process.pid}`;
  const template = str('leader-elect-template') ?? process.env[SERVE_ENV.podTemplateHash] ?? '';
  return { identity, leaseDurationMs, renewIntervalMs, template };
}

/** The database flags' values (see `DATABASE_FLAG_NAMES`), checked: the default backend must be a database. */
export function databaseConfig(values: Record<string, string | boolean | undefined>): DatabaseConfig {
  const str = (name: (typeof DATABASE_FLAG_NAMES)[number]) => values[name] as string | undefined;
  const endpoint = str('endpoint') ?? (process.env[SERVE_ENV.endpoint] || DEFAULT_ENDPOINT);
  if (/^https?:\/\//i.test(endpoint.trim())) {
    throw new FlagError(
      `--endpoint "${redactEndpoint(endpoint)}": the default backend holds the meta store and leases, so it must be a database (sqlite://, postgres://, mysql://); route keys to an etcd or another middleware with a topology rule`,
    );
  }
  return {
    endpoint,
    backendTls:
      str('ca-file') || str('cert-file') || str('key-file') || values['skip-verify']
        ? { caFile: str('ca-file'), certFile: str('cert-file'), keyFile: str('key-file'), skipVerify: values['skip-verify'] === true }
        : undefined,
    queryTimeoutMs: duration('query-timeout', str('query-timeout') ?? SERVE_FLAGS['query-timeout'].default),
  };
}

export function parseServeFlags(args: string[]): ServeConfig {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args, options: SERVE_FLAGS as Record<string, FlagSpec>, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new FlagError((e as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, ''));
  }
  const str = (name: keyof typeof SERVE_FLAGS) => values[name] as string | undefined;
  const listen = hostPort('listen-address', str('listen-address')!, true);
  const metricsFlag = str('metrics-bind-address')!;
  const logFormat = str('log-format')!;
  if (logFormat !== 'plain' && logFormat !== 'json') throw new FlagError(`--log-format "${logFormat}": use plain or json`);
  const version = str('emulated-etcd-version')!;
  if (!/^\d+\.\d+\.\d+$/.test(version) || !versionAtLeast(version, [3, 5, 13])) {
    throw new FlagError(`--emulated-etcd-version "${version}": must be a version >= 3.5.13 (kube-apiserver needs it for watch progress)`);
  }
  const certFile = str('server-cert-file');
  const keyFile = str('server-key-file');
  if (!!certFile !== !!keyFile) throw new FlagError('--server-cert-file and --server-key-file go together');
  if (str('server-ca-file') && !certFile) throw new FlagError('--server-ca-file needs --server-cert-file and --server-key-file');
  const database = databaseConfig(values);
  const progressNotifyMs = positive('watch-progress-notify-interval', duration('watch-progress-notify-interval', str('watch-progress-notify-interval')!));
  return {
    listenHost: listen.host || '0.0.0.0',
    listenPort: listen.port,
    ...database,
    serverTls: certFile && keyFile ? { certFile, keyFile, caFile: str('server-ca-file') } : undefined,
    metrics: metricsFlag === '0' || metricsFlag === '' ? undefined : hostPort('metrics-bind-address', metricsFlag, true),
    logFormat,
    progressNotifyMs,
    etcdVersion: version,
    compactIntervalMs: duration('compact-interval', str('compact-interval')!),
    compactMinRetain: count('compact-min-retain', str('compact-min-retain')!, 0),
    compactBatchSize: count('compact-batch-size', str('compact-batch-size')!, 1),
    compactTimeoutMs: duration('compact-timeout', str('compact-timeout')!),
    readCacheBytes: count('read-cache-size', str('read-cache-size')!, 0) * 1024 * 1024,
    topologyConfig: str('topology-config') ?? (process.env[SERVE_ENV.topologyConfig] || undefined),
    topologyPollMs: positive('topology-poll-interval', duration('topology-poll-interval', str('topology-poll-interval')!)),
    topologyTlsDir: str('topology-tls-dir') ?? (process.env[SERVE_ENV.topologyTlsDir] || undefined),
    migrationRate: count('migration-rate', str('migration-rate')!, 0),
    leaderElection: values['leader-elect'] === true ? leaderElection(str) : undefined,
    debug: values.debug === true,
    help: values.help === true,
  };
}

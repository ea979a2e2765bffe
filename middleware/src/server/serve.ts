/**
 * `harikube serve`: the etcd-compatible middleware over its default backend and the backends its topology
 * routes to. Exits non-zero with a message naming the problem on bad flags, an unreachable default backend,
 * or a topology that cannot be applied on a first start (later starts serve by the topology in effect).
 */
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { openBackend, type Backend } from '../backends/index.js';
import { META as META_NAMES } from '../backends/meta.js';
import { RoutedBackend } from '../router/routed-backend.js';
import { Mover } from '../migration/mover.js';
import type { BackendRule } from '../topology/schema.js';
import type { TopologySource } from '../topology/source/source.js';
import { configureLogging, logger } from '../log.js';
import { AutoCompactor } from '../mvcc/auto-compactor.js';
import { Store, type StoreOptions } from '../mvcc/store.js';
import type { LeaderElection } from '../leader/election.js';
import { redactEndpoint } from '../topology/endpoint.js';
import { FlagError, parseServeFlags, serveUsage, type ServeConfig } from './flags.js';
import { installFrameChecks } from './grpc-frames.js';
import { healthDefinition, healthService } from './health.js';
import { startHttpServer } from './http.js';
import { kvDefinition, kvService } from './kv.js';
import { layerService, layerServiceDefinition } from './layer.js';
import { leaseService } from './lease.js';
import { clusterService, maintenanceService } from './maintenance.js';
import { etcdService } from './proto.js';
import { GRPC_OVERHEAD_BYTES, MAX_REQUEST_BYTES, withRequestSizes } from './rpc.js';
import { registerWatchMetrics, watchDefinition, watchService } from './watch.js';

const log = logger.child({ component: 'serve' });

function readFile(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new FlagError(`--${flag} "${path}": ${(e as Error).message}`);
  }
}

function serverCredentials(cfg: ServeConfig): grpc.ServerCredentials {
  if (!cfg.serverTls) return grpc.ServerCredentials.createInsecure();
  const { certFile, keyFile, caFile } = cfg.serverTls;
  return grpc.ServerCredentials.createSsl(
    caFile ? readFile('server-ca-file', caFile) : null,
    [{ cert_chain: readFile('server-cert-file', certFile), private_key: readFile('server-key-file', keyFile) }],
    !!caFile,
  );
}

function bind(server: grpc.Server, address: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(address, creds, (err, port) => (err ? reject(new Error(`cannot listen on ${address}: ${err.message}`)) : resolve(port))),
  );
}

/** The backends of a topology's rules, with their own TLS and pool settings. */
function ruleBackends(cfg: ServeConfig, meta: Backend): (rule: BackendRule) => Backend {
  // a child middleware answers only to the parent that claimed it: this middleware's cluster ID
  const parentClusterId = async () => (await meta.getMeta(META_NAMES.clusterId))?.toString() ?? '';
  return (rule) => openBackend(rule.endpoint, { tls: rule.backendTLS, pool: rule.connectionPool, queryTimeoutMs: cfg.queryTimeoutMs, parentClusterId });
}

/**
 * Starts the topology source and applies what it delivers. Never down: a topology that cannot be applied
 * (refused, a database that cannot be opened, an invalid document, an unreadable file or URL) never stops a
 * middleware that has a topology in effect - the one saved in the default backend at the last run, or, for a
 * store that already holds data but never had rules, "everything on the default backend". It serves with that,
 * stays ready, logs the refusal and counts it in the topology metrics, and tries again when the source changes
 * (or, for a database that could not be opened, after a backoff). Only a first start (empty store, nothing
 * saved) with an unusable topology fails, with the reason: there is nothing to serve by yet. A secret://
 * source lives in the store itself, so the middleware must serve for it to be fixed: never fatal.
 */
async function startTopology(cfg: ServeConfig, store: Store, routed: RoutedBackend, mover: Mover): Promise<TopologySource | undefined> {
  const tlog = logger.child({ component: 'topology' });
  const inEffect = routed.table.document.backends.length;
  if (!cfg.topologyConfig) {
    if (inEffect) tlog.warn('no topology source (TOPOLOGY_CONFIG) set: routing by the topology saved at the last run', { rules: inEffect });
    return undefined;
  }
  // loaded only when a topology source is configured: the plain server stays small (RSS budget)
  const [
    { StoreKeyReader },
    { countUnusableTopology },
    { META },
    { TopologyApplier, TopologyRefusedError },
    { createTopologySource, secretInfoOf },
    { TopologyReporter },
    { TopologyRetry },
    { TopologyValidationError },
  ] = await Promise.all([
    import('../mvcc/key-reader.js'),
    import('../router/metrics.js'),
    import('../backends/meta.js'),
    import('./topology-applier.js'),
    import('../topology/source/index.js'),
    import('./topology-report.js'),
    import('./topology-retry.js'),
    import('../topology/validate.js'),
  ]);
  const applier = new TopologyApplier({ store, routed, defaultEndpoint: cfg.endpoint, factory: ruleBackends(cfg, routed), logger: tlog, onMigration: () => mover.kick() });
  const source = createTopologySource(cfg.topologyConfig, {
    keys: new StoreKeyReader(store),
    logger: tlog,
    pollIntervalMs: cfg.topologyPollMs,
    tlsDir: cfg.topologyTlsDir,
  });
  const saved = (await routed.defaultBackend.getMeta(META.topology)) !== undefined;
  // a fresh store is at revision 1 (as etcd); the first write makes it 2
  const firstStart = !saved && store.revision <= 1;
  const fatalAtStart = firstStart && !source.description.startsWith('secret://');
  // secret:// only: what was done with each reading is reported back next to the Secret, for the operator
  const secretRef = /^secret:\/\/([^/]+)\/([^/]+)$/.exec(source.description);
  const reporter = secretRef ? new TopologyReporter(store, secretRef[1]!, secretRef[2]!, tlog, mover) : undefined;
  const report = (p: Promise<void> | undefined) => void p?.catch(() => undefined);
  const retry = new TopologyRetry(() => source.reload(), tlog, source.description);
  let starting = true;
  let startError: Error | undefined;
  await source.start({
    onUpdate: async (update) => {
      try {
        await applier.apply(update.document, update.origin);
      } catch (err) {
        if (update.secret) report(reporter?.refused(update.secret, (err as Error).message, err instanceof TopologyRefusedError ? err.rules : []));
        throw err;
      }
      retry.reset();
      if (update.secret) report(reporter?.applied(update.secret));
    },
    onError: (err) => {
      const info = secretInfoOf(err);
      if (info) {
        const rules = err instanceof TopologyValidationError ? [...new Set(err.issues.map((i) => i.rule).filter((r): r is string => !!r))] : [];
        report(reporter?.refused(info, err.message, rules));
      }
      // refusals are counted by the applier; this is a source that is unreadable or invalid
      if (!(err instanceof TopologyRefusedError)) countUnusableTopology();
      if (starting && fatalAtStart) {
        startError ??= err;
        return;
      }
      tlog.error(starting ? 'topology not applied at start; serving with the topology in effect' : 'topology not applied; the topology in effect stays', {
        source: source.description,
        error: err.message,
        inEffect: starting ? (saved ? 'saved at the last run' : 'no rules (as at the last run)') : 'unchanged',
        rules: routed.table.document.backends.length,
      });
      retry.refused(err);
    },
  });
  starting = false;
  if (startError) {
    retry.stop();
    await source.stop();
    const named = startError.message.includes(source.description) ? startError.message : `topology ${source.description}: ${startError.message}`;
    throw new Error(`${named}; this is a first start (no topology saved, an empty store), so there is no topology in effect to serve by: fix the topology and start again`);
  }
  tlog.info('topology source started', { source: source.description, rules: routed.table.document.backends.length });
  return {
    description: source.description,
    start: (h) => source.start(h),
    reload: () => source.reload(),
    stop: async () => {
      retry.stop();
      await source.stop();
      reporter?.stop();
    },
  };
}

export interface RunningServer {
  store: Store;
  grpcPort: number;
  stop(): Promise<void>;
}

/** Starts everything `serve` runs; resolves once clients can connect. */
export async function startServer(cfg: ServeConfig, opts: { fence?: StoreOptions['fence'] } = {}): Promise<RunningServer> {
  const defaultBackend = openBackend(cfg.endpoint, { tls: cfg.backendTls, queryTimeoutMs: cfg.queryTimeoutMs });
  const routed = new RoutedBackend(defaultBackend, ruleBackends(cfg, defaultBackend));
  const store = await Store.open({
    backend: routed,
    compactBatchSize: cfg.compactBatchSize,
    compactTimeoutMs: cfg.compactTimeoutMs,
    readCacheBytes: cfg.readCacheBytes,
    fence: opts.fence,
  });
  // moves keys that a topology change (now or before a restart) routed to another backend
  const mover = new Mover({ host: routed, keysPerSecond: cfg.migrationRate });
  if (routed.table.migrating) mover.start();
  let topology: TopologySource | undefined;
  try {
    topology = await startTopology(cfg, store, routed, mover);
  } catch (err) {
    await mover.stop();
    await store.close();
    throw err;
  }

  installFrameChecks();
  const server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES,
    'grpc.max_send_message_length': -1,
    // kube-apiserver's etcd client pings every 30 s, also between calls
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5000,
    'grpc-node.max_session_memory': 256,
  });
  const scheme = cfg.serverTls ? 'https' : 'http';
  const advertised = `${scheme}://${cfg.listenHost === '0.0.0.0' ? '127.0.0.1' : cfg.listenHost}:${cfg.listenPort}`;
  const identity = { version: cfg.etcdVersion, name: 'harikube', clientUrls: [advertised] };
  server.addService(kvDefinition(withRequestSizes(etcdService('KV'))), kvService(store));
  server.addService(watchDefinition(etcdService('Watch')), watchService(store));
  server.addService(withRequestSizes(etcdService('Lease')), leaseService(store));
  server.addService(etcdService('Maintenance'), maintenanceService(store, identity));
  server.addService(etcdService('Cluster'), clusterService(store, identity));
  server.addService(healthDefinition, healthService(store));
  server.addService(layerServiceDefinition, layerService(store));
  registerWatchMetrics(() => store.hub);

  const hostForBind = cfg.listenHost.includes(':') ? `[${cfg.listenHost}]` : cfg.listenHost;
  const grpcPort = await bind(server, `${hostForBind}:${cfg.listenPort}`, serverCredentials(cfg));

  let httpServer: http.Server | undefined;
  if (cfg.metrics) {
    try {
      httpServer = await startHttpServer(cfg.metrics.host, cfg.metrics.port, store, () => mover.status());
    } catch (e) {
      server.forceShutdown();
      await topology?.stop();
      await mover.stop();
      await store.close();
      throw new Error(`cannot listen on --metrics-bind-address ${cfg.metrics.host}:${cfg.metrics.port}: ${(e as Error).message}`);
    }
  }

  const progress = setInterval(() => store.hub.progressTick(), cfg.progressNotifyMs);
  progress.unref();
  const compactor = new AutoCompactor(store, { intervalMs: cfg.compactIntervalMs, minRetain: cfg.compactMinRetain, log });
  compactor.start();

  log.info('serving the etcd v3 API', {
    listen: `${cfg.listenHost}:${grpcPort}`,
    tls: !!cfg.serverTls,
    clientCertificates: !!cfg.serverTls?.caFile,
    endpoint: redactEndpoint(cfg.endpoint),
    metrics: cfg.metrics ? `${cfg.metrics.host || '0.0.0.0'}:${cfg.metrics.port}` : 'off',
    version: cfg.etcdVersion,
  });

  return {
    store,
    grpcPort,
    async stop() {
      clearInterval(progress);
      compactor.stop();
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 5000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      // close() waits for open connections: a client polling /readyz over keep-alive would hold it forever
      const httpClosed = new Promise<void>((resolve) => (httpServer ? httpServer.close(() => resolve()) : resolve()));
      httpServer?.closeAllConnections();
      await httpClosed;
      await topology?.stop();
      await mover.stop();
      await store.close();
    },
  };
}

export async function main(args: string[]): Promise<number> {
  let cfg: ServeConfig;
  try {
    cfg = parseServeFlags(args);
  } catch (e) {
    process.stderr.write(`harikube serve: ${(e as Error).message}\n\n${serveUsage()}\n`);
    return 2;
  }
  if (cfg.help) {
    process.stdout.write(serveUsage() + '\n');
    return 0;
  }
  configureLogging({ format: cfg.logFormat, level: cfg.debug ? 'debug' : 'info' });
  const stopRequested = new AbortController();
  let onStop: (signal: string) => void = () => {};
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      log.info('shutting down', { signal });
      stopRequested.abort();
      onStop(signal);
    });
  }
  let election: LeaderElection | undefined;
  let electionBackend: Backend | undefined;
  try {
    if (cfg.leaderElection) {
      electionBackend = openBackend(cfg.endpoint, { tls: cfg.backendTls, queryTimeoutMs: cfg.queryTimeoutMs });
      await electionBackend.open();
      const { LeaderElection } = await import('../leader/election.js');
      election = new LeaderElection({ backend: electionBackend, ...cfg.leaderElection, logger: log });
      if (!(await standBy(cfg, election, stopRequested.signal))) {
        await electionBackend.close();
        return 0;
      }
    }
  } catch (e) {
    await electionBackend?.close().catch(() => undefined);
    process.stderr.write(`harikube serve: ${(e as Error).message}\n`);
    return 1;
  }
  let running: RunningServer;
  try {
    running = await startServer(cfg, { fence: election?.fence });
  } catch (e) {
    log.error('cannot start', { error: (e as Error).message });
    process.stderr.write(`harikube serve: ${(e as Error).message}\n`);
    await election?.release();
    await electionBackend?.close().catch(() => undefined);
    return 1;
  }
  let code = 0;
  /** Set when a newer replica (a rolling update's new pod) is to take over: the lease goes to it by name. */
  let successor: string | undefined;
  await new Promise<void>((resolve) => {
    let stopping = false;
    const shutdown = () => {
      if (stopping) return;
      stopping = true;
      running
        .stop()
        .catch((err: unknown) => log.error('shutdown failed', { error: err }))
        .then(() => (successor ? election?.handOver(successor) : election?.release()))
        .then(() => electionBackend?.close())
        .catch((err: unknown) => log.warn('closing the election connection failed', { error: err }))
        .then(() => resolve());
    };
    onStop = shutdown;
    if (stopRequested.signal.aborted) shutdown();
    // a deposed leader stops serving: its writes are fenced, and its reads may be stale
    election?.startRenewing(
      () => {
        code = 1;
        shutdown();
      },
      // hand-over: stop serving first, then give the lease; the container restarts as a standby (exit 0)
      (next) => {
        successor = next.identity;
        shutdown();
      },
    );
  });
  return code;
}

/**
 * Waits for the leader lease, answering /healthz (and /readyz with 503) meanwhile so the pod stays alive
 * but receives no traffic. Resolves false when asked to stop first.
 */
async function standBy(cfg: ServeConfig, election: LeaderElection, signal: AbortSignal): Promise<boolean> {
  const probes = cfg.metrics ? await startHttpServer(cfg.metrics.host, cfg.metrics.port, { ready: async () => false }) : undefined;
  try {
    return await election.acquire(signal);
  } finally {
    if (probes) {
      const closed = new Promise<void>((resolve) => probes.close(() => resolve()));
      probes.closeAllConnections();
      await closed;
    }
  }
}

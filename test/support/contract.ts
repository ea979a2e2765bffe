/**
 * Declares one `describe` per selected target around the same test body, with one server per target per
 * file and unique key prefixes per test so tests in a file never see each other's keys. The servers of all
 * targets start together, before the first target's tests (a start is mostly waiting: for a database, for
 * readiness). Each begins to stop in its target's `after`, and the file's last hook waits for every stop.
 */
import { randomBytes } from 'node:crypto';
import { after, before, describe } from 'node:test';
import { skipUnless, type Service } from './env.js';
import { EtcdClient } from './grpc.js';
import { REFERENCE_VERSION, selectedTargets, startTarget, targetSkip, type RunningServer, type ServerOptions, type TargetName } from './targets.js';

/** Bounds one target's whole suite in a file, so nothing can hang the run. */
const SUITE_TIMEOUT_MS = 5 * 60_000;
/** Server start (tsx compile, database creation) on busy shared cores. */
const START_TIMEOUT_MS = 90_000;

export class TargetContext {
  private serverRef: RunningServer | undefined;
  private clientRef: EtcdClient | undefined;
  private readonly extraClients: EtcdClient[] = [];
  private prefixes = 0;

  constructor(readonly target: TargetName) {}

  /** True for the reference etcd. */
  get isReference(): boolean {
    return this.target === 'etcd';
  }

  get server(): RunningServer {
    if (!this.serverRef) throw new Error(`${this.target} server is not running (did before() fail?)`);
    return this.serverRef;
  }

  get client(): EtcdClient {
    if (!this.clientRef) throw new Error(`${this.target} client is not connected (did before() fail?)`);
    return this.clientRef;
  }

  get address(): string {
    return this.server.address;
  }

  /** A key prefix no other test in this run uses, e.g. `/hk-contract/txn/3-9f2c1a/`. */
  prefix(label: string): string {
    return `/hk-contract/${label}/${this.prefixes++}-${randomBytes(3).toString('hex')}/`;
  }

  /** Another connection to the same server (closed after the suite). */
  newClient(): EtcdClient {
    const c = new EtcdClient(this.address);
    this.extraClients.push(c);
    return c;
  }

  /**
   * `skip` option for a case the reference etcd 3.4.23 demonstrably gets wrong (fixed in later etcd): skips
   * it on the etcd target only and keeps the assertion for the middleware. HARIKUBE_TEST_RUN_DEVIATIONS=1
   * runs them against etcd too, to re-check that the reference still deviates.
   */
  deviation(reason: string): string | false {
    if (!this.isReference || process.env.HARIKUBE_TEST_RUN_DEVIATIONS === '1') return false;
    return `known deviation of the reference etcd ${REFERENCE_VERSION}: ${reason}`;
  }

  /** A second, fresh server of the same target; the caller stops it. */
  startFresh(options?: ServerOptions): Promise<RunningServer> {
    return startTarget(this.target, options);
  }

  /** Takes the server `starting` resolves to (see `contractSuite`). */
  async start(starting: Promise<RunningServer>): Promise<void> {
    this.serverRef = await starting;
    this.clientRef = new EtcdClient(this.serverRef.address);
  }

  /**
   * Closes the clients and begins stopping the server; the file's last hook waits for the stop (and reports
   * its failure), so removing its storage overlaps the next target's tests.
   */
  stop(): void {
    for (const c of this.extraClients.splice(0)) c.close();
    this.clientRef?.close();
    this.clientRef = undefined;
    this.serverRef?.stop().catch(() => undefined);
    this.serverRef = undefined;
  }
}

/** `server` whose stop() runs once, however often it is called (its target's `after`, then the file's). */
function stopsOnce(server: RunningServer): RunningServer {
  let stopping: Promise<void> | undefined;
  return { ...server, stop: () => (stopping ??= server.stop()) };
}

export interface SuiteOptions extends ServerOptions {
  /** Run only on these targets (still filtered by HARIKUBE_TEST_TARGETS); default all. */
  targets?: readonly TargetName[];
  /** Services every target of this suite needs besides its own (e.g. 'etcdctl'). */
  services?: Service[];
}

/**
 * `await contractSuite('kv range', (t) => { it(...) })`: runs the body once per selected target. Targets
 * whose database (or a needed service) is missing are skipped, or fail under HARIKUBE_TEST_REQUIRE_ALL=1.
 */
export async function contractSuite(title: string, body: (t: TargetContext) => void, options: SuiteOptions = {}): Promise<void> {
  const { targets: only, services = [], ...serverOptions } = options;
  const targets = selectedTargets().filter((name) => !only || only.includes(name));
  const skips = await Promise.all(
    targets.map(async (name) => (await skipUnless(...services)) || (await targetSkip(name))),
  );
  const running = targets.filter((_, i) => !skips[i]);
  let starting: Map<TargetName, Promise<RunningServer>> | undefined;
  /** Starts every target's server at once; resolves when all have started or failed (each fails alone). */
  const startAll = async () => {
    starting ??= new Map(running.map((name) => [name, startTarget(name, serverOptions).then(stopsOnce)]));
    await Promise.allSettled(starting.values());
    return starting;
  };
  // every stop is awaited here, and a target whose tests did not run (a name pattern, a failed hook) has
  // its server stopped too
  after(
    async () => {
      const started = await Promise.allSettled(starting?.values() ?? []);
      await Promise.all(started.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
    },
    { timeout: 60_000 },
  );
  targets.forEach((target, i) => {
    describe(`${title} [${target}]`, { skip: skips[i] ?? false, timeout: SUITE_TIMEOUT_MS }, () => {
      const t = new TargetContext(target);
      before(async () => t.start((await startAll()).get(target)!), { timeout: START_TIMEOUT_MS });
      after(() => t.stop());
      body(t);
    });
  });
}

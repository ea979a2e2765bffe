/**
 * The TopologyConfig operator: informers on TopologyConfigs (cluster-wide) and on the Secrets it manages feed
 * a work queue keyed by target Secret; while this replica leads, workers reconcile those keys. Informers run
 * on every replica so a standby takes over with a warm cache; only the leader writes.
 */
import type { Logger } from '../log.js';
import { eventRecorder } from './events.js';
import { Informer } from './informer.js';
import type { KubeClient } from './kube-client.js';
import { allConfigMapsPath, allSecretsPath, allTopologyConfigsPath, configMapsPath, secretsPath } from './kube-paths.js';
import { KubeLeaseElector } from './lease-elector.js';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from './markers.js';
import { parseReport, REPORT_FOR_LABEL, type ApplyReport } from '../topology/apply-report.js';
import { isLeaderGauge, queueDepth, reconcileSeconds, reconcilesTotal, topologyConfigsByStatus } from './metrics.js';
import { NotLeaderError, reconcileTarget, type SecretResource, type TopologyConfigResource } from './reconcile.js';
import { targetOf } from './resolve.js';
import { WorkQueue } from './work-queue.js';
import type { TopologyConfigStatus } from '../topology/topologyconfig.js';
import type { AppliedSource } from './topology-secret.js';

export interface OperatorOptions {
  client: KubeClient;
  log: Logger;
  /** Unique per replica; names the Lease holder and Events' reportingInstance. */
  identity: string;
  /** Leader election settings, or false to act as leader at once (single replica, tests). */
  leaderElection:
    | false
    | { namespace: string; name: string; leaseDurationMs?: number; renewDeadlineMs?: number; retryPeriodMs?: number };
  /** Every target is reconciled again this often (catches edited Secrets and rotated decrypt keys). */
  resyncMs?: number;
  workers?: number;
  watchTimeoutSeconds?: number;
  informerBackoffMs?: { base: number; max: number };
  retryBackoffMs?: { base: number; max: number };
  /** How soon a resource waiting for its decrypt Secret is looked at again (a fallback: the Secret is watched). */
  transientRetryMs?: number;
  /**
   * Namespaces whose Secrets the operator may use (target and decrypt Secrets) and where it watches them and
   * the middlewares' apply reports. Empty or absent: every namespace (needs cluster-wide Secret access).
   */
  secretNamespaces?: string[];
  /** Active only once every middleware reading the target Secret reports it applied the rules; default true. */
  waitForMiddleware?: boolean;
  /** /healthz fails when one reconcile runs longer than this; default 5 minutes. */
  stuckReconcileMs?: number;
  /** /healthz fails when no list or watch has reached the API server for this long; default 2 minutes. */
  apiLostMs?: number;
  now?: () => number;
}

/** The work of one leadership term; a new term starts with a fresh queue and status memory. */
interface Term {
  queue: WorkQueue;
  workers: Promise<void>[];
  writtenStatus: Map<string, { generation: number; status: TopologyConfigStatus }>;
  routedRules: Map<string, AppliedSource>;
}

export class TopologyConfigController {
  readonly topologyConfigs: Informer<TopologyConfigResource>;
  /** Secrets (targets and decrypt keys): one informer per namespace in --secret-namespaces, else one cluster-wide. */
  readonly secretInformers: Informer<SecretResource>[];
  /** The middlewares' apply reports (ConfigMaps labelled harikube.info/topology-report-for). */
  readonly reportInformers: Informer<SecretResource>[];
  /** Start times of reconciles in progress, by worker (for /healthz). */
  private readonly inFlight = new Map<number, number>();
  private nextWorker = 0;
  private readonly elector?: KubeLeaseElector;
  private readonly abort = new AbortController();
  private term?: Term;
  private electing?: Promise<void>;
  private resyncTimer?: NodeJS.Timeout;
  private stopping = false;
  private leading = false;
  /** Workers of ended terms still finishing their reconcile. */
  private draining: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: OperatorOptions) {
    const informerOpts = {
      client: opts.client,
      watchTimeoutSeconds: opts.watchTimeoutSeconds,
      backoffBaseMs: opts.informerBackoffMs?.base,
      backoffMaxMs: opts.informerBackoffMs?.max,
    };
    this.topologyConfigs = new Informer<TopologyConfigResource>({
      ...informerOpts,
      path: allTopologyConfigsPath(),
      log: opts.log.child({ informer: 'topologyconfigs' }),
    });
    const namespaces = opts.secretNamespaces?.length ? opts.secretNamespaces : [undefined];
    this.secretInformers = namespaces.map(
      (ns) =>
        new Informer<SecretResource>({
          ...informerOpts,
          path: ns ? secretsPath(ns) : allSecretsPath(),
          log: opts.log.child({ informer: 'secrets', ...(ns ? { namespace: ns } : {}) }),
        }),
    );
    this.reportInformers = namespaces.map(
      (ns) =>
        new Informer<SecretResource>({
          ...informerOpts,
          path: ns ? configMapsPath(ns) : allConfigMapsPath(),
          labelSelector: REPORT_FOR_LABEL,
          log: opts.log.child({ informer: 'apply-reports', ...(ns ? { namespace: ns } : {}) }),
        }),
    );
    this.topologyConfigs.on({
      add: (tc) => this.enqueue(targetOf(tc.spec)),
      update: (old, tc) => {
        // Our own status writes come back as updates; only spec and lifecycle changes need work.
        const same =
          old.metadata.generation === tc.metadata.generation &&
          old.metadata.deletionTimestamp === tc.metadata.deletionTimestamp &&
          JSON.stringify(old.metadata.finalizers ?? []) === JSON.stringify(tc.metadata.finalizers ?? []) &&
          targetOf(old.spec) === targetOf(tc.spec);
        if (same) return;
        this.enqueue(targetOf(tc.spec));
        if (targetOf(old.spec) !== targetOf(tc.spec)) this.enqueue(targetOf(old.spec)); // moved: drop it there
      },
      delete: (tc) => this.enqueue(targetOf(tc.spec)),
    });
    const onSecret = (s: SecretResource) => {
      const ref = `${s.metadata.namespace}/${s.metadata.name}`;
      // Someone edited or deleted a topology Secret: put it back the way the TopologyConfigs say.
      if (s.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE) this.enqueue(ref);
      // A decrypt Secret appeared, got a new key or lost one: its resources are resolved again at once.
      for (const tc of this.topologyConfigs.list()) if (tc.spec?.endpointDecryptSecret === ref) this.enqueue(targetOf(tc.spec));
    };
    for (const informer of this.secretInformers) informer.on({ add: onSecret, update: (_, s) => onSecret(s), delete: onSecret });
    const onReport = (cm: SecretResource) => {
      const report = parseReport(cm);
      if (report?.secret) this.enqueue(report.secret);
    };
    for (const informer of this.reportInformers) informer.on({ add: onReport, update: (_, cm) => onReport(cm), delete: onReport });
    if (opts.leaderElection) {
      this.elector = new KubeLeaseElector({
        client: opts.client,
        identity: opts.identity,
        log: opts.log.child({ component: 'leader-election' }),
        ...opts.leaderElection,
        onStartedLeading: () => this.startTerm(),
        onStoppedLeading: () => void this.endTerm(),
      });
    }
  }

  /** Starts informers and the campaign for leadership (or leads at once without leader election). */
  private informers(): Informer<SecretResource | TopologyConfigResource>[] {
    return [this.topologyConfigs, ...this.secretInformers, ...(this.opts.waitForMiddleware === false ? [] : this.reportInformers)] as Informer<
      SecretResource | TopologyConfigResource
    >[];
  }

  /** Apply reports of the middlewares reading `target` (namespace/name). */
  reportsFor(target: string): ApplyReport[] {
    const ns = target.slice(0, target.indexOf('/'));
    const out: ApplyReport[] = [];
    for (const informer of this.reportInformers) {
      for (const cm of informer.list()) {
        if (cm.metadata.namespace !== ns) continue;
        const r = parseReport(cm);
        if (r?.secret === target) out.push(r);
      }
    }
    return out;
  }

  start(): void {
    for (const informer of this.informers()) informer.start();
    if (this.elector) this.electing = this.elector.run(this.abort.signal);
    else this.startTerm();
    const resyncMs = this.opts.resyncMs ?? 10 * 60_000;
    this.resyncTimer = setInterval(() => this.enqueueAll(), resyncMs);
    this.resyncTimer.unref();
  }

  /** Graceful stop: no new work, in-flight reconciles finish, the Lease is handed back, watches close. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.resyncTimer);
    this.abort.abort();
    await this.electing;
    await this.endTerm();
    await this.draining;
    await this.elector?.release();
    await Promise.all(this.informers().map((i) => i.stop()));
  }

  /** May this replica write right now? */
  canWrite(): boolean {
    if (this.stopping || !this.leading) return false;
    return this.elector ? this.elector.isLeader() : true;
  }

  isLeader(): boolean {
    return this.leading && this.canWrite();
  }

  /** Ready once both caches are filled (a standby is ready too: it can take over at once). */
  isReady(): boolean {
    return this.informers().every((i) => i.hasSynced());
  }

  /**
   * What the liveness probe reports: failing when a reconcile has run longer than `stuckReconcileMs` (a hung
   * request or a deadlock: restarting helps) or when no list or watch has reached the API server for
   * `apiLostMs` (a connection that stays broken). A standby runs informers too, so it is checked the same way.
   */
  health(): { ok: boolean; detail: Record<string, unknown> } {
    const now = (this.opts.now ?? Date.now)();
    const problems: string[] = [];
    const oldest = Math.min(...this.inFlight.values());
    const stuckMs = this.opts.stuckReconcileMs ?? 5 * 60_000;
    if (this.inFlight.size && now - oldest > stuckMs) problems.push(`a reconcile has been running for ${Math.round((now - oldest) / 1000)}s (limit ${stuckMs / 1000}s)`);
    const lostMs = this.opts.apiLostMs ?? 2 * 60_000;
    for (const informer of this.informers()) {
      const since = informer.failingSince;
      if (since !== undefined && now - since > lostMs) {
        problems.push(`${informer.description}: no answer from the API server for ${Math.round((now - since) / 1000)}s (${informer.lastError})`);
      }
    }
    return {
      ok: problems.length === 0,
      detail: {
        leader: this.isLeader(),
        synced: this.isReady(),
        problems,
        watchErrors: this.informers().map((i) => i.lastError).filter(Boolean),
      },
    };
  }

  /** Resolves when every cache is filled (for tests and startup logs). */
  async waitForSync(): Promise<void> {
    await Promise.all(this.informers().map((i) => i.waitForSync()));
  }

  private enqueue(target: string): void {
    const term = this.term;
    if (!term) return;
    term.queue.add(target);
    queueDepth.set(term.queue.length);
  }

  private enqueueAll(): void {
    const term = this.term;
    if (!term) return;
    term.writtenStatus.clear(); // let a resync repair statuses someone else edited
    for (const tc of this.topologyConfigs.list()) this.enqueue(targetOf(tc.spec));
    for (const informer of this.secretInformers) {
      for (const s of informer.list()) {
        if (s.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE) this.enqueue(`${s.metadata.namespace}/${s.metadata.name}`);
      }
    }
  }

  private startTerm(): void {
    if (this.stopping || this.term) return;
    this.leading = true;
    isLeaderGauge.set(1);
    const queue = new WorkQueue({ retryBaseMs: this.opts.retryBackoffMs?.base, retryMaxMs: this.opts.retryBackoffMs?.max });
    const term: Term = { queue, workers: [], writtenStatus: new Map(), routedRules: new Map() };
    this.term = term;
    const workers = Math.max(1, this.opts.workers ?? 2);
    for (let i = 0; i < workers; i++) term.workers.push(this.work(term));
    // Everything is reconciled once per term, after the caches are filled (not against a partial view).
    void this.waitForSync().then(() => {
      if (this.term === term) this.enqueueAll();
    });
  }

  private async endTerm(): Promise<void> {
    const term = this.term;
    this.leading = false;
    isLeaderGauge.set(0);
    if (!term) return;
    this.term = undefined;
    term.queue.shutDown();
    const finished = Promise.all(term.workers);
    this.draining = Promise.all([this.draining, finished]);
    await finished;
  }

  private async work(term: Term): Promise<void> {
    const log = this.opts.log;
    const worker = this.nextWorker++;
    for (let key = await term.queue.get(); key !== undefined; key = await term.queue.get()) {
      const end = reconcileSeconds.startTimer();
      const started = (this.opts.now ?? Date.now)();
      this.inFlight.set(worker, started);
      try {
        const result = await reconcileTarget(key, {
          client: this.opts.client,
          topologyConfigs: () => this.topologyConfigs.list(),
          events: eventRecorder({
            client: this.opts.client,
            instance: this.opts.identity,
            canWrite: () => this.canWrite(),
            log,
          }),
          canWrite: () => this.canWrite() && this.term === term,
          log,
          writtenStatus: term.writtenStatus,
          routedRules: term.routedRules,
          transientRetryMs: this.opts.transientRetryMs,
          reports: this.opts.waitForMiddleware === false ? undefined : (target) => this.reportsFor(target),
          secretNamespaces: this.opts.secretNamespaces,
        });
        term.queue.forget(key);
        if (result.requeueAfterMs) term.queue.addAfter(key, result.requeueAfterMs);
        reconcilesTotal.inc({ result: result.requeueAfterMs ? 'requeue' : 'success' });
      } catch (e) {
        if (e instanceof NotLeaderError) {
          log.info('stopped reconciling: not the leader', { targetSecret: key });
        } else {
          const delay = term.queue.retry(key);
          reconcilesTotal.inc({ result: 'error' });
          log.warn('reconcile failed; will retry', { targetSecret: key, error: e, retryInMs: delay });
        }
      } finally {
        this.inFlight.delete(worker);
        end();
        term.queue.done(key);
        queueDepth.set(term.queue.length);
        this.countStatuses();
      }
    }
  }

  private countStatuses(): void {
    const counts: Record<string, number> = { Pending: 0, Active: 0, Failed: 0, Migrating: 0 };
    for (const tc of this.topologyConfigs.list()) {
      const s = tc.status?.deployStatus ?? 'Pending';
      counts[s] = (counts[s] ?? 0) + 1;
    }
    for (const [status, n] of Object.entries(counts)) topologyConfigsByStatus.set({ status }, n);
  }
}

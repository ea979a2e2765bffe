/**
 * One reconcile of one topology Secret (`namespace/name`): every TopologyConfig that targets it is resolved,
 * merged and written as one Secret; then finalizers of deleted resources are released (once every reporting
 * middleware applied the Secret without their rules and moved their keys out: deletion-hold.ts) and each
 * resource's status and Events are updated. Idempotent: running it again with nothing changed writes nothing.
 *
 * Order matters for safety: finalizers are added before rules are written (a resource deleted right after
 * can still be cleaned up), and removed only after the Secret no longer holds its rules and no key lives by them.
 */
import type { Logger } from '../log.js';
import { TOPOLOGYCONFIG_API_VERSION, type TopologyConfigObject, type TopologyConfigStatus } from '../topology/topologyconfig.js';
import { keysFromSecretData, DecryptError, type NamedKey } from './decrypt.js';
import type { EventRecorder } from './events.js';
import { isNotFound, KubeApiError, type KubeClient, type KubeObject } from './kube-client.js';
import { secretPath, secretsPath, splitRef, topologyConfigPath } from './kube-paths.js';
import {
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  SECRET_FINALIZER,
  SOURCES_ANNOTATION,
  TOPOLOGY_SECRET_LABEL,
  TOPOLOGYCONFIG_FINALIZER,
} from './markers.js';
import { memberKey, planMerge, type MergeMember, type MergeOutcome, type MergePlan } from './topology-merge.js';
import { KeyLookupError, resolveRules, targetOf } from './resolve.js';
import { eventFor, nextStatus, sameStatus, type StatusReport } from './status.js';
import { deletionHold } from './deletion-hold.js';
import { readAppliedSources, renderSourcesAnnotation, type AppliedSource } from './topology-secret.js';
import { documentDigest, documentState, sameDocuments, type ApplyReport } from '../topology/apply-report.js';
import { redactEndpoint } from '../topology/endpoint.js';

/** A TopologyConfig as read from the API (spec not yet validated). */
export type TopologyConfigResource = KubeObject & Pick<TopologyConfigObject, 'spec'> & { status?: TopologyConfigStatus };

export interface SecretResource extends KubeObject {
  data?: Record<string, string>;
  type?: string;
}

export interface ReconcileDeps {
  client: KubeClient;
  /** Every TopologyConfig the operator knows (the informer's cache). */
  topologyConfigs: () => TopologyConfigResource[];
  events: EventRecorder;
  /** False once this replica is not the leader (or shutting down): no write may start then. */
  canWrite: () => boolean;
  log: Logger;
  /**
   * Statuses this replica wrote, by uid: the informer may not have delivered them yet, and comparing with its
   * older copy would write (and announce) the same status twice. Owned by one leadership term.
   */
  writtenStatus?: Map<string, { generation: number; status: TopologyConfigStatus }>;
  /** How soon to look again when a resource waits for something that may appear (a decrypt Secret). */
  transientRetryMs?: number;
  /**
   * Apply reports of the middlewares reading the target Secret (`namespace/name`), see topology/apply-report.ts.
   * Given: a resource is Active only once every reporting middleware has applied its rules. Absent: Active as
   * soon as the rules are in the Secret (no middleware to wait for).
   */
  reports?: (target: string) => ApplyReport[];
  /**
   * The rules each resource last had routed by every middleware (by uid), learned from the reports; a refused
   * generation falls back to these. Owned by one leadership term (after a failover a refused resource falls back
   * to no rules: the keys its rules held move back to the default backend online, unless they are in an etcd or a
   * child middleware, where the middleware refuses that too and the resource waits for a spec change).
   */
  routedRules?: Map<string, AppliedSource>;
  /** Namespaces whose Secrets the operator may use (--secret-namespaces); absent: all. */
  secretNamespaces?: string[];
  now?: () => Date;
}

export interface ReconcileResult {
  requeueAfterMs?: number;
  /** Resources whose rules are in the Secret after this reconcile (for logs and tests). */
  active: string[];
  failed: string[];
}

/** Thrown when leadership was lost mid-reconcile: the new leader will redo the work. */
export class NotLeaderError extends Error {
  constructor() {
    super('not the leader any more; leaving the rest of this reconcile to the new leader');
    this.name = 'NotLeaderError';
  }
}

const SECRET_REF = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/;

const hasFinalizer = (o: KubeObject, f: string): boolean => (o.metadata.finalizers ?? []).includes(f);

/** Items of some list responses carry no apiVersion/kind; Events need them to point at the object. */
const typed = (tc: TopologyConfigResource): TopologyConfigResource => ({
  ...tc,
  apiVersion: tc.apiVersion ?? TOPOLOGYCONFIG_API_VERSION,
  kind: tc.kind ?? 'TopologyConfig',
});

function sameRecord(a: Record<string, string> | undefined, b: Record<string, string>): boolean {
  const ka = Object.keys(a ?? {}).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a![k] === b[k]);
}

export async function reconcileTarget(target: string, deps: ReconcileDeps): Promise<ReconcileResult> {
  const { client, log } = deps;
  const now = deps.now ?? (() => new Date());
  const guard = () => {
    if (!deps.canWrite()) throw new NotLeaderError();
  };
  const ref = splitRef(target);
  const tlog = log.child({ targetSecret: target });

  const all = deps.topologyConfigs().filter((tc) => targetOf(tc.spec) === target);
  const deleting = all.filter((tc) => tc.metadata.deletionTimestamp && hasFinalizer(tc, TOPOLOGYCONFIG_FINALIZER));
  let live = all.filter((tc) => !tc.metadata.deletionTimestamp);

  // The CRD's pattern normally keeps bad references out; without it (an old CRD) they must not reach a path.
  if (!SECRET_REF.test(target)) {
    const message = `targetSecret "${target}" is not namespace/name of a Secret (e.g. harikube/topology-config)`;
    await writeStatuses(live, () => ({ deployStatus: 'Failed', conditionReason: 'InvalidTargetSecret', message }), deps, guard, now);
    await releaseFinalizers(deleting, target, deps, guard);
    return { active: [], failed: live.map((tc) => memberKey(tc.metadata as { namespace: string; name: string })) };
  }

  const allowed = (ns: string) => !deps.secretNamespaces?.length || deps.secretNamespaces.includes(ns);
  const outside = (ref: string) =>
    `the operator uses Secrets only in namespace(s) ${deps.secretNamespaces!.join(', ')} (--secret-namespaces), not ${ref}; ` +
    'use a Secret there, or add its namespace to the operator\'s --secret-namespaces (and Secret access there)';
  if (!allowed(ref.namespace)) {
    const message = `targetSecret: ${outside(target)}`;
    await writeStatuses(live, () => ({ deployStatus: 'Failed', conditionReason: 'InvalidTargetSecret', message }), deps, guard, now);
    await releaseFinalizers(deleting, target, deps, guard);
    return { active: [], failed: live.map((tc) => memberKey(tc.metadata as { namespace: string; name: string })) };
  }

  // 1. Our finalizer on every live resource before its rules can reach the Secret.
  live = (
    await Promise.all(
      live.map((tc) =>
        hasFinalizer(tc, TOPOLOGYCONFIG_FINALIZER)
          ? tc
          : updateFinalizers(tc, (list) => (list.includes(TOPOLOGYCONFIG_FINALIZER) ? undefined : [...list, TOPOLOGYCONFIG_FINALIZER]), deps, guard),
      ),
    )
  ).filter((tc): tc is TopologyConfigResource => tc !== undefined && !tc.metadata.deletionTimestamp);

  // 2. The Secret as it is now, and whether it is ours to write.
  let secret: SecretResource | undefined;
  try {
    secret = await client.request<SecretResource>('GET', secretPath(ref.namespace, ref.name));
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  const managed =
    !secret ||
    secret.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE ||
    Object.keys(secret.data ?? {}).length === 0; // an empty Secret (created for the middleware up front) is adopted
  if (!managed) {
    const message =
      `target Secret ${target} already exists and is not managed by the operator (no label ` +
      `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}, and it has data); delete it, label it to hand it over, or choose another targetSecret`;
    tlog.warn('target Secret is not managed by the operator; not touching it');
    await writeStatuses(live, () => ({ deployStatus: 'Failed', conditionReason: 'TargetSecretNotManaged', message }), deps, guard, now);
    await releaseFinalizers(deleting, target, deps, guard);
    return { active: [], failed: live.map((tc) => memberKey(tc.metadata as { namespace: string; name: string })) };
  }

  // 3. Resolve each resource's rules (decrypting endpoints) and merge.
  const keyCache = new Map<string, Promise<NamedKey[]>>();
  const keysFor = (secretRef: string) => {
    let p = keyCache.get(secretRef);
    if (!p) {
      p = allowed(splitRef(secretRef).namespace) ? loadKeys(client, secretRef) : Promise.reject(new KeyLookupError(outside(secretRef), false));
      keyCache.set(secretRef, p);
    }
    return p;
  };
  let transient = false;
  /** Resources waiting for something that may appear (their decrypt Secret): Pending, not Failed. */
  const waiting = new Set<string>();
  /** Resources whose rules of this generation a middleware refused: kept out of the Secret until changed. */
  const refusedBefore = new Map<string, string>();
  const members: MergeMember[] = await Promise.all(
    live.map(async (tc) => {
      const key = memberKey(tc.metadata as { namespace: string; name: string });
      const refusal = refusedAt(tc, deps);
      if (refusal !== undefined) {
        refusedBefore.set(key, refusal);
      }
      const resolved = refusal !== undefined ? ({ ok: false, failure: refusal, transient: false } as const) : await resolveRules(tc.spec, keysFor);
      if (!resolved.ok && resolved.transient) {
        transient = true;
        waiting.add(key);
      }
      return {
        namespace: tc.metadata.namespace!,
        name: tc.metadata.name,
        uid: tc.metadata.uid ?? '',
        generation: tc.metadata.generation ?? 0,
        creationTimestamp: tc.metadata.creationTimestamp ?? '',
        position: typeof tc.spec?.position === 'number' ? tc.spec.position : Number.MAX_SAFE_INTEGER,
        ...(resolved.ok ? { rules: resolved.rules } : { failure: resolved.failure }),
      };
    }),
  );
  const applied = readAppliedSources(secret?.metadata.annotations, secret?.data, (m) => tlog.warn(m));
  // A refused generation must leave the Secret: its fallback is what was routed before, not what the Secret holds.
  const inSecret = new Map(applied);
  for (const m of members) {
    const key = memberKey(m);
    const held = applied.get(key);
    if (!refusedBefore.has(key) || !held || held.generation !== m.generation) continue;
    const routed = deps.routedRules?.get(m.uid);
    if (routed && routed.generation !== m.generation) applied.set(key, routed);
    else applied.delete(key);
  }
  const plan = planMerge(members, applied);

  // 4. Write the Secret.
  try {
    await writeSecret(target, secret, plan, live.length > 0, deps, guard);
  } catch (e) {
    if (e instanceof NotLeaderError) throw e;
    // Tell users why nothing changes yet; the queue retries the write.
    const message = `waiting to write Secret ${target}: ${(e as Error).message}`;
    await writeStatuses(
      live.filter((tc) => tc.status?.deployStatus !== 'Active' || tc.status.observedGeneration !== tc.metadata.generation),
      () => ({ deployStatus: 'Pending', conditionReason: 'Pending', message }),
      deps,
      guard,
      now,
    ).catch(() => undefined);
    throw e;
  }

  // 5. Deleted resources: their rules are gone from the Secret now; each lets go once no key goes to or stays
  // in its databases (deletion-hold.ts), so whatever waits for the delete may drop them.
  const currentDigests = plan.documents.map((d) => documentDigest(d.text));
  const holds = new Map<TopologyConfigResource, StatusReport>();
  for (const tc of deleting) {
    const key = memberKey(tc.metadata as { namespace: string; name: string });
    const rules = [...(tc.spec?.backends ?? []).map((r) => r.name), ...(inSecret.get(key)?.rules ?? []).map((r) => r.name)];
    const hold = deletionHold(rules, currentDigests, deps.reports?.(target));
    if (hold) holds.set(tc, hold);
  }
  await releaseFinalizers(deleting.filter((tc) => !holds.has(tc)), target, deps, guard);
  await writeStatuses([...holds.keys()], (tc) => holds.get(tc)!, deps, guard, now);

  // 6. Status and Events.
  const outcomeOf = (tc: TopologyConfigResource) => plan.outcomes.get(memberKey(tc.metadata as { namespace: string; name: string }))!;
  const routed = deps.reports ? routingReports(plan, currentDigests, members, inSecret, deps.reports(target), target) : undefined;
  for (const [key, report] of routed ?? []) {
    if (report.deployStatus !== 'Active') continue;
    const source = plan.sources.find((x) => memberKey(x) === key);
    const m = members.find((x) => memberKey(x) === key);
    if (source && m?.rules) deps.routedRules?.set(m.uid, { ...source, rules: m.rules });
  }
  await writeStatuses(
    live,
    (tc) => {
      const key = memberKey(tc.metadata as { namespace: string; name: string });
      const outcome = outcomeOf(tc);
      if (refusedBefore.has(key)) return { deployStatus: 'Failed', conditionReason: REFUSED_REASON, message: refusedBefore.get(key)! };
      if (waiting.has(key)) return waitingReport(outcome);
      return routed?.get(key) ?? reportFor(outcome, target);
    },
    deps,
    guard,
    now,
  );

  const outcomes = [...plan.outcomes.values()];
  const result: ReconcileResult = {
    active: outcomes.filter((o) => o.state === 'current').map(memberKey),
    failed: outcomes.filter((o) => o.state !== 'current').map(memberKey),
  };
  if (transient) result.requeueAfterMs = deps.transientRetryMs ?? 30_000;
  // resources a middleware just refused: write the Secret again without their new rules at once
  if ([...(routed?.values() ?? [])].some((r) => r.conditionReason === REFUSED_REASON)) result.requeueAfterMs = 1;
  tlog.debug('reconciled', { active: result.active.length, failed: result.failed.length, rules: plan.merged.backends.length });
  return result;
}

async function loadKeys(client: KubeClient, secretRef: string): Promise<NamedKey[]> {
  const { namespace, name } = splitRef(secretRef);
  let secret: SecretResource;
  try {
    secret = await client.request<SecretResource>('GET', secretPath(namespace, name));
  } catch (e) {
    if (isNotFound(e)) throw new KeyLookupError('Secret not found (create it, or fix the reference)', true);
    throw new KeyLookupError(`cannot read the Secret: ${(e as Error).message}`, true);
  }
  const data = new Map(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
  try {
    return keysFromSecretData(data, secretRef);
  } catch (e) {
    throw e instanceof DecryptError ? new KeyLookupError(e.message.replace(`Secret ${secretRef} `, ''), false) : e;
  }
}

/** Ready condition reason of a resource whose rules a middleware refused. */
export const REFUSED_REASON = 'RefusedByMiddleware';
const MAX_REASON = 4000;

/** The refusal recorded in the status for the current generation, if any (by this term, or in the object). */
function refusedAt(tc: TopologyConfigResource, deps: ReconcileDeps): string | undefined {
  const generation = tc.metadata.generation ?? 0;
  const written = deps.writtenStatus?.get(tc.metadata.uid ?? '');
  const status = written && written.generation === generation ? written.status : tc.status;
  const ready = status?.conditions?.find((c) => c.type === 'Ready');
  if (ready?.reason !== REFUSED_REASON || ready.observedGeneration !== generation) return undefined;
  return status?.deployStatusReason ?? ready.message;
}

function waitingReport(outcome: MergeOutcome): StatusReport {
  const kept = outcome.state === 'previous' ? `; the rules of generation ${outcome.appliedGeneration} stay applied` : '';
  return { deployStatus: 'Pending', conditionReason: 'WaitingForDecryptSecret', message: `waiting: ${outcome.failure ?? 'its decrypt Secret is missing'}${kept}` };
}

/**
 * Statuses from the middlewares' apply reports, for resources whose current rules are in the Secret: Active
 * when every reporting middleware applied the document written for it; Migrating while one moves keys for it;
 * Failed (RefusedByMiddleware) for the resources a refusal is about (the rules it names; all changed ones when
 * it names none), whose rules then leave the Secret until their spec changes; Pending otherwise.
 */
function routingReports(
  plan: MergePlan,
  /** `documentDigest` of each of `plan.documents`, in order. */
  current: string[],
  members: MergeMember[],
  applied: Map<string, AppliedSource>,
  reports: ApplyReport[],
  target: string,
): Map<string, StatusReport> {
  const out = new Map<string, StatusReport>();
  const digestOf = new Map(plan.documents.map((d, i) => [d.key, current[i]!]));
  // refusal reasons may quote endpoints (redacted); a sealed endpoint must not show at all, so none does
  const endpoints = plan.merged.backends.map((r) => r.endpoint);
  const hide = (text: string) =>
    endpoints
      .reduce((t, e) => t.split(e).join('<endpoint>').split(redactEndpoint(e)).join('<endpoint>'), text)
      .slice(0, MAX_REASON);
  const ids = reports.map((r) => r.middleware).sort();
  // A refusal counts only while it is about the Secret as written now: once the operator wrote it again
  // (without the rules a refusal was about), the middleware's answer to the new content is awaited instead.
  reports = reports.map((r) => (r.refused && !sameDocuments(r.refused.documents, current) ? { ...r, refused: undefined } : r));
  const refused: Array<{ key: string; reason: string; rules: string[]; middleware: string }> = [];
  for (const [key, outcome] of plan.outcomes) {
    if (outcome.state !== 'current' || !outcome.key) continue;
    const digest = digestOf.get(outcome.key) ?? documentDigest('');
    const where = `Secret ${target} as ${outcome.key}`;
    if (reports.length === 0) {
      out.set(key, {
        deployStatus: 'Pending',
        conditionReason: 'WaitingForMiddleware',
        message: `rules written to ${where}; no middleware has reported applying it yet (a middleware started with --topology-config secret://${target} reports once it has)`,
      });
      continue;
    }
    // Migrating only while keys of this resource's own rules move (another team's migration is not its own)
    const ruleNames = (members.find((m) => memberKey(m) === key)?.rules ?? []).map((r) => r.name);
    const states = reports.map((r) => ({ id: r.middleware, s: documentState(r, digest, ruleNames) }));
    const refusal = states.find((x) => x.s.state === 'refused');
    const migrating = states.find((x) => x.s.state === 'migrating');
    const unseen = states.filter((x) => x.s.state === 'unseen').map((x) => x.id);
    if (refusal && refusal.s.state === 'refused') {
      refused.push({ key, reason: refusal.s.reason, rules: refusal.s.rules, middleware: refusal.id });
    } else if (migrating && migrating.s.state === 'migrating') {
      out.set(key, {
        deployStatus: 'Migrating',
        conditionReason: 'Migrating',
        message: `rules in effect; middleware ${migrating.id} is moving the keys stored before: ${migrating.s.progress} (\`harikube migrate status\` on that middleware follows it)`,
      });
    } else if (unseen.length) {
      out.set(key, {
        deployStatus: 'Pending',
        conditionReason: 'WaitingForMiddleware',
        message: `rules written to ${where}; waiting for middleware ${unseen.join(', ')} to apply them`,
      });
    } else {
      out.set(key, { deployStatus: 'Active', conditionReason: 'Applied', message: `rules applied by middleware ${ids.join(', ')} from ${where}` });
    }
  }
  if (refused.length) {
    const names = (key: string) => {
      const m = members.find((x) => memberKey(x) === key);
      return new Set([...(m?.rules ?? []).map((r) => r.name), ...(applied.get(key)?.rules ?? []).map((r) => r.name)]);
    };
    const named = refused.filter((r) => r.rules.some((n) => names(r.key).has(n)));
    const culprits = named.length ? named : refused;
    for (const r of refused) {
      if (culprits.includes(r)) {
        out.set(r.key, { deployStatus: 'Failed', conditionReason: REFUSED_REASON, message: hide(`middleware ${r.middleware} refused these rules: ${r.reason}`) });
      } else {
        out.set(r.key, {
          deployStatus: 'Pending',
          conditionReason: 'WaitingForMiddleware',
          message: `middleware ${r.middleware} refused Secret ${target} because of the rules of ${culprits.map((c) => c.key).join(', ')}; it is written again without them`,
        });
      }
    }
  }
  return out;
}

function reportFor(outcome: MergeOutcome, target: string): StatusReport {
  if (outcome.state === 'current') {
    return { deployStatus: 'Active', conditionReason: 'Applied', message: `rules applied to Secret ${target} as ${outcome.key}` };
  }
  if (outcome.state === 'previous') {
    return {
      deployStatus: 'Failed',
      conditionReason: 'RulesRejected',
      message: `${outcome.failure}; the rules of generation ${outcome.appliedGeneration} stay applied`,
    };
  }
  return { deployStatus: 'Failed', conditionReason: 'RulesRejected', message: outcome.failure ?? 'rules rejected' };
}

async function writeSecret(
  target: string,
  secret: SecretResource | undefined,
  plan: MergePlan,
  inUse: boolean,
  deps: ReconcileDeps,
  guard: () => void,
): Promise<void> {
  const { namespace, name } = splitRef(target);
  const data = Object.fromEntries(plan.documents.map((d) => [d.key, Buffer.from(d.text, 'utf8').toString('base64')]));
  const labels = { ...secret?.metadata.labels, [MANAGED_BY_LABEL]: MANAGED_BY_VALUE, [TOPOLOGY_SECRET_LABEL]: 'true' };
  const annotations = { ...secret?.metadata.annotations, [SOURCES_ANNOTATION]: renderSourcesAnnotation(plan.sources) };
  const others = (secret?.metadata.finalizers ?? []).filter((f) => f !== SECRET_FINALIZER);
  // Kubernetes refuses new finalizers on an object being deleted; keep ours only if it is already there.
  const keepOurs = inUse && (!secret?.metadata.deletionTimestamp || hasFinalizer(secret, SECRET_FINALIZER));
  const finalizers = keepOurs ? [...others, SECRET_FINALIZER] : others;

  if (!secret) {
    if (!inUse) return; // nothing targets it and it does not exist: nothing to do
    guard();
    await deps.client.request('POST', secretsPath(namespace), {
      body: { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace, labels, annotations, finalizers }, type: 'Opaque', data },
    });
    deps.log.info('created topology Secret', { targetSecret: target, keys: plan.documents.length });
    return;
  }
  if (secret.metadata.deletionTimestamp && inUse) {
    deps.log.warn('topology Secret is being deleted while TopologyConfigs still target it; it stays until they are gone', {
      targetSecret: target,
    });
  }
  const unchanged =
    sameRecord(secret.data, data) &&
    sameRecord(secret.metadata.labels, labels) &&
    sameRecord(secret.metadata.annotations, annotations) &&
    JSON.stringify(secret.metadata.finalizers ?? []) === JSON.stringify(finalizers);
  if (unchanged) return;
  guard();
  await deps.client.request('PUT', secretPath(namespace, name), {
    body: { ...secret, metadata: { ...secret.metadata, labels, annotations, finalizers }, data },
  });
  deps.log.info('updated topology Secret', { targetSecret: target, keys: plan.documents.length });
}

async function releaseFinalizers(
  deleting: TopologyConfigResource[],
  target: string,
  deps: ReconcileDeps,
  guard: () => void,
): Promise<void> {
  for (const tc of deleting) {
    let removed = false;
    await updateFinalizers(
      tc,
      (list) => {
        if (!list.includes(TOPOLOGYCONFIG_FINALIZER)) return undefined;
        removed = true;
        return list.filter((f) => f !== TOPOLOGYCONFIG_FINALIZER);
      },
      deps,
      guard,
    );
    if (!removed) continue; // released before (the informer had not caught up)
    deps.log.info('removed rules of deleted TopologyConfig', {
      topologyConfig: `${tc.metadata.namespace}/${tc.metadata.name}`,
      targetSecret: target,
    });
    await deps.events.record(typed(tc), 'Normal', 'Removed', `rules removed from Secret ${target}`);
  }
}

/**
 * Sets a TopologyConfig's finalizers to `change(current)` (undefined: leave them) with a JSON patch guarded
 * by resourceVersion. The informer's copy may be stale, so a failed guard re-reads the object and tries
 * once more. Returns the object after the change, or undefined when it no longer exists.
 */
async function updateFinalizers(
  tc: TopologyConfigResource,
  change: (finalizers: string[]) => string[] | undefined,
  deps: ReconcileDeps,
  guard: () => void,
): Promise<TopologyConfigResource | undefined> {
  const path = topologyConfigPath(tc.metadata.namespace!, tc.metadata.name);
  let current = tc;
  for (let attempt = 0; ; attempt++) {
    const next = change(current.metadata.finalizers ?? []);
    if (!next) return current;
    guard();
    try {
      return await deps.client.request<TopologyConfigResource>('PATCH', path, {
        patch: 'json',
        body: [
          { op: 'test', path: '/metadata/resourceVersion', value: current.metadata.resourceVersion },
          { op: 'add', path: '/metadata/finalizers', value: next },
        ],
      });
    } catch (e) {
      if (isNotFound(e)) return undefined;
      const stale = e instanceof KubeApiError && (e.code === 409 || e.code === 422);
      if (!stale || attempt > 0) throw e;
    }
    try {
      current = await deps.client.request<TopologyConfigResource>('GET', path);
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }
}

async function writeStatuses(
  resources: TopologyConfigResource[],
  reportOf: (tc: TopologyConfigResource) => StatusReport,
  deps: ReconcileDeps,
  guard: () => void,
  now: () => Date,
): Promise<void> {
  for (const tc of resources) {
    const generation = tc.metadata.generation ?? 0;
    const uid = tc.metadata.uid ?? memberKey(tc.metadata as { namespace: string; name: string });
    const written = deps.writtenStatus?.get(uid);
    const before = written && written.generation === generation ? written.status : tc.status;
    const status = nextStatus(before, generation, reportOf(tc), now());
    if (sameStatus(before, status)) continue;
    guard();
    try {
      await deps.client.request('PATCH', topologyConfigPath(tc.metadata.namespace!, tc.metadata.name, 'status'), {
        patch: 'merge',
        body: { status },
      });
    } catch (e) {
      if (isNotFound(e)) continue; // deleted meanwhile
      throw e;
    }
    deps.writtenStatus?.set(uid, { generation, status });
    const event = eventFor(before, status);
    if (event) await deps.events.record(typed(tc), event.type, event.reason, event.message);
    if (status.deployStatus === 'Failed') {
      deps.log.warn('TopologyConfig failed', { topologyConfig: `${tc.metadata.namespace}/${tc.metadata.name}`, reason: status.deployStatusReason });
    }
  }
}

/**
 * One reconcile of one topology Secret (`namespace/name`): every TopologyConfig that targets it is resolved,
 * merged and written as one Secret; then finalizers of deleted resources are released and each resource's
 * status and Events are updated. Idempotent: running it again with nothing changed writes nothing.
 *
 * Order matters for safety: finalizers are added before rules are written (a resource deleted right after
 * can still be cleaned up), and removed only after the Secret no longer holds its rules.
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
import { memberKey, planMerge, type MergeMember, type MergeOutcome, type MergePlan } from './merge.js';
import { KeyLookupError, resolveRules, targetOf } from './resolve.js';
import { eventFor, nextStatus, sameStatus, type StatusReport } from './status.js';
import { readAppliedSources, renderSourcesAnnotation } from './topology-secret.js';

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
      p = loadKeys(client, secretRef);
      keyCache.set(secretRef, p);
    }
    return p;
  };
  let transient = false;
  const members: MergeMember[] = await Promise.all(
    live.map(async (tc) => {
      const resolved = await resolveRules(tc.spec, keysFor);
      if (!resolved.ok && resolved.transient) transient = true;
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

  // 5. Deleted resources: their rules are gone from the Secret now.
  await releaseFinalizers(deleting, target, deps, guard);

  // 6. Status and Events.
  const outcomeOf = (tc: TopologyConfigResource) => plan.outcomes.get(memberKey(tc.metadata as { namespace: string; name: string }))!;
  await writeStatuses(live, (tc) => reportFor(outcomeOf(tc), target), deps, guard, now);

  const outcomes = [...plan.outcomes.values()];
  const result: ReconcileResult = {
    active: outcomes.filter((o) => o.state === 'current').map(memberKey),
    failed: outcomes.filter((o) => o.state !== 'current').map(memberKey),
  };
  if (transient) result.requeueAfterMs = deps.transientRetryMs ?? 30_000;
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

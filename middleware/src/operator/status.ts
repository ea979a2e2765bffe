/**
 * TopologyConfig status: what the operator reports per resource (deployStatus, reason, observedGeneration,
 * a standard Ready condition) and which Event a change deserves. Pure functions; reasons come from merge and
 * resolve, which never put endpoints or credentials in them.
 */
import type { Condition, DeployStatus, TopologyConfigStatus } from '../topology/topologyconfig.js';

export interface StatusReport {
  deployStatus: DeployStatus;
  /** CamelCase reason of the Ready condition. */
  conditionReason: string;
  message: string;
}

/** The status to write for `generation`, keeping the Ready condition's transition time when it did not flip. */
export function nextStatus(
  current: TopologyConfigStatus | undefined,
  generation: number,
  report: StatusReport,
  now: Date,
): TopologyConfigStatus {
  const ready: Condition['status'] =
    report.deployStatus === 'Active' ? 'True' : report.deployStatus === 'Failed' || report.deployStatus === 'Migrating' ? 'False' : 'Unknown';
  const previous = current?.conditions?.find((c) => c.type === 'Ready');
  const condition: Condition = {
    type: 'Ready',
    status: ready,
    observedGeneration: generation,
    lastTransitionTime:
      previous && previous.status === ready ? previous.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    reason: report.conditionReason,
    message: report.message,
  };
  const others = (current?.conditions ?? []).filter((c) => c.type !== 'Ready');
  return {
    deployStatus: report.deployStatus,
    deployStatusReason: report.message,
    observedGeneration: generation,
    conditions: [...others, condition],
  };
}

/** True when writing `next` would change nothing a reader can see. */
export function sameStatus(a: TopologyConfigStatus | undefined, b: TopologyConfigStatus): boolean {
  if (!a) return false;
  if (a.deployStatus !== b.deployStatus || a.deployStatusReason !== b.deployStatusReason) return false;
  if (a.observedGeneration !== b.observedGeneration) return false;
  const key = (c: Condition) => JSON.stringify([c.type, c.status, c.reason, c.message, c.observedGeneration, c.lastTransitionTime]);
  const ca = (a.conditions ?? []).map(key).sort();
  const cb = (b.conditions ?? []).map(key).sort();
  return ca.length === cb.length && ca.every((v, i) => v === cb[i]);
}

/**
 * The Event a status change deserves, if any: Applied when new rules went live, Migrating when keys start
 * moving for them (not on every progress update), Failed when a failure is new.
 */
export function eventFor(
  before: TopologyConfigStatus | undefined,
  after: TopologyConfigStatus,
): { type: 'Normal' | 'Warning'; reason: 'Applied' | 'Migrating' | 'Failed'; message: string } | undefined {
  if (after.deployStatus === 'Active') {
    if (before?.deployStatus === 'Active' && before.observedGeneration === after.observedGeneration) return undefined;
    return { type: 'Normal', reason: 'Applied', message: after.deployStatusReason ?? 'rules applied' };
  }
  if (after.deployStatus === 'Migrating') {
    if (before?.deployStatus === 'Migrating' && before.observedGeneration === after.observedGeneration) return undefined;
    return { type: 'Normal', reason: 'Migrating', message: after.deployStatusReason ?? 'keys are moving' };
  }
  if (after.deployStatus === 'Failed') {
    if (before?.deployStatus === 'Failed' && before.deployStatusReason === after.deployStatusReason) return undefined;
    return { type: 'Warning', reason: 'Failed', message: after.deployStatusReason ?? 'rules rejected' };
  }
  return undefined;
}

/**
 * Merging the TopologyConfigs that target one Secret into one topology (pure: no I/O).
 *
 * Rule order is by `position`, ties by namespace/name. When resources conflict (the same backend name or
 * endpoint), what is live wins over what is new, so a change can never take routing away from data that is
 * already placed: (1) the last applied rules of a resource that is now Failed keep their names and endpoints;
 * (2) a name or endpoint a resource already had applied and still declares stays its own; (3) otherwise the
 * older resource (creationTimestamp, then namespace/name) wins. A resource that loses fails alone, naming the
 * rule, the field and the other resource; it falls back to its own last applied rules when it has any.
 * Finally the merged document is validated exactly as the middleware validates it.
 */
import type { BackendRule, TopologyDocument } from '../topology/schema.js';
import { formatIssue, validateTopology } from '../topology/validate.js';
import { topologyConfigDocument, topologyConfigKey } from '../topology/secret-layout.js';
import type { AppliedSource, SourceRecord } from './topology-secret.js';

/** One TopologyConfig that targets the Secret (and is not being deleted), with its resolved rules. */
export interface MergeMember {
  namespace: string;
  name: string;
  uid: string;
  generation: number;
  /** RFC 3339; orders conflict resolution (older wins). */
  creationTimestamp: string;
  position: number;
  /** Rules of the current spec with plaintext endpoints, validated on their own; absent when `failure` says why. */
  rules?: BackendRule[];
  failure?: string;
}

export type AppliedState = 'current' | 'previous' | 'none';

export interface MergeOutcome {
  namespace: string;
  name: string;
  /** current: this generation's rules are in the Secret; previous: the last good ones stay; none: no rules. */
  state: AppliedState;
  /** Why the current rules are not applied (state previous or none). */
  failure?: string;
  /** The data key holding the resource's rules, when it has any. */
  key?: string;
  /** Generation whose rules are applied (for previous: the older one). */
  appliedGeneration?: number;
}

export interface MergePlan {
  /** Data keys and their documents, in rule order. */
  documents: Array<{ key: string; text: string }>;
  sources: SourceRecord[];
  /** The merged topology, as the middleware will see it. */
  merged: TopologyDocument;
  /** By `namespace/name`. */
  outcomes: Map<string, MergeOutcome>;
}

export const memberKey = (m: { namespace: string; name: string }): string => `${m.namespace}/${m.name}`;

function byNamespaceName(a: { namespace: string; name: string }, b: { namespace: string; name: string }): number {
  return a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Rule order: position, then namespace/name. */
export function compareByPosition(
  a: { position: number; namespace: string; name: string },
  b: { position: number; namespace: string; name: string },
): number {
  return a.position - b.position || byNamespaceName(a, b);
}

/** Conflict priority among new rules: older first, then namespace/name. */
function compareByAge(a: MergeMember, b: MergeMember): number {
  const ta = Date.parse(a.creationTimestamp) || 0;
  const tb = Date.parse(b.creationTimestamp) || 0;
  return ta - tb || byNamespaceName(a, b);
}

interface Working {
  member: MergeMember;
  previous?: AppliedSource;
  state: AppliedState;
  failure?: string;
}

function contentOf(w: Working): BackendRule[] {
  if (w.state === 'current') return w.member.rules!;
  if (w.state === 'previous') return w.previous!.rules;
  return [];
}

function positionOf(w: Working): number {
  return w.state === 'previous' ? w.previous!.position : w.member.position;
}

function describeRule(rules: BackendRule[], index: number): string {
  return `backends[${index}] (name "${rules[index]!.name}")`;
}

function demote(w: Working, reason: string): void {
  if (w.state === 'current') {
    w.failure = reason;
    w.state = w.previous ? 'previous' : 'none';
  } else if (w.state === 'previous') {
    w.failure = `${w.failure ?? reason}; its last applied rules (generation ${w.previous!.generation}) conflict too and were removed: ${reason}`;
    w.state = 'none';
  }
}

type Claim = { owner: Working; index: number };

/**
 * Finds the first conflict in the current contents; returns the member to demote and why, or undefined.
 * Claims are taken in priority order: live previous rules, then current rules by incumbency and age.
 */
function firstConflict(working: Working[]): { loser: Working; reason: string } | undefined {
  const names = new Map<string, Claim>();
  const endpoints = new Map<string, Claim>();
  // A name/endpoint a resource had applied and still declares is reserved for it (rule 2 above).
  const reservedNames = new Map<string, Claim>();
  const reservedEndpoints = new Map<string, Claim>();
  for (const w of working) {
    if (w.state !== 'current' || !w.previous) continue;
    const prevNames = new Set(w.previous.rules.map((r) => r.name));
    const prevEndpoints = new Set(w.previous.rules.map((r) => r.endpoint));
    w.member.rules!.forEach((r, index) => {
      if (prevNames.has(r.name)) reservedNames.set(r.name, { owner: w, index });
      if (prevEndpoints.has(r.endpoint)) reservedEndpoints.set(r.endpoint, { owner: w, index });
    });
  }
  const ordered = [
    ...working.filter((w) => w.state === 'previous').sort((a, b) => compareByAge(a.member, b.member)),
    ...working.filter((w) => w.state === 'current').sort((a, b) => compareByAge(a.member, b.member)),
  ];
  for (const w of ordered) {
    const rules = contentOf(w);
    for (let index = 0; index < rules.length; index++) {
      const rule = rules[index]!;
      const checks: Array<[string, Map<string, Claim>, Map<string, Claim>, string]> = [
        ['name', names, reservedNames, rule.name],
        ['endpoint', endpoints, reservedEndpoints, rule.endpoint],
      ];
      for (const [field, claimed, reserved, value] of checks) {
        const other = claimed.get(value) ?? (w.state === 'current' ? reserved.get(value) : undefined);
        if (!other || other.owner === w) continue;
        const otherRules = contentOf(other.owner);
        const whose = other.owner.state === 'previous' ? 'the last applied rules of TopologyConfig' : 'TopologyConfig';
        return {
          loser: w,
          reason:
            `${describeRule(rules, index)}: field "${field}": duplicates the ${field} of ` +
            `${describeRule(otherRules, other.index)} in ${whose} ${memberKey(other.owner.member)}`,
        };
      }
    }
    rules.forEach((r, index) => {
      names.set(r.name, { owner: w, index });
      endpoints.set(r.endpoint, { owner: w, index });
    });
  }
  return undefined;
}

/** Orders the contents, validates the merged document, and returns it or the member an issue belongs to. */
function assemble(working: Working[]): { merged: TopologyDocument; ordered: Working[] } | { loser: Working; reason: string } {
  const ordered = working
    .filter((w) => w.state !== 'none')
    .sort((a, b) => compareByPosition({ ...a.member, position: positionOf(a) }, { ...b.member, position: positionOf(b) }));
  const backends: BackendRule[] = [];
  const owners: Array<{ owner: Working; offset: number }> = [];
  for (const w of ordered) {
    const rules = contentOf(w);
    rules.forEach((_, i) => owners.push({ owner: w, offset: i }));
    backends.push(...rules);
  }
  const result = validateTopology({ backends });
  if (result.ok) return { merged: result.value, ordered };
  const issue = result.issues.find((i) => i.index !== undefined) ?? result.issues[0]!;
  const at = issue.index !== undefined ? owners[issue.index] : undefined;
  const loser = at?.owner ?? ordered[ordered.length - 1]!;
  return { loser, reason: formatIssue({ ...issue, index: at?.offset }) + ' (in the merged topology)' };
}

/**
 * Merges `members` given what the Secret holds now (`applied`, by namespace/name). Deterministic: the same
 * inputs give the same plan, whatever their order.
 */
export function planMerge(members: MergeMember[], applied: Map<string, AppliedSource>): MergePlan {
  const working: Working[] = members.map((member) => {
    const prev = applied.get(memberKey(member));
    const previous = prev && prev.uid === member.uid && prev.rules.length > 0 ? prev : undefined;
    const w: Working = { member, previous, state: 'current' };
    if (!member.rules) demote(w, member.failure ?? 'its rules could not be resolved');
    return w;
  });

  // Every round demotes one member one step (current -> previous -> none), so this ends within 2n+1 rounds.
  let assembled: { merged: TopologyDocument; ordered: Working[] } | undefined;
  for (let round = 0; round <= 2 * working.length + 1 && !assembled; round++) {
    const conflict = firstConflict(working);
    if (conflict) {
      demote(conflict.loser, conflict.reason);
      continue;
    }
    const result = assemble(working);
    if ('loser' in result) demote(result.loser, result.reason);
    else assembled = result;
  }
  if (!assembled) throw new Error('internal error: merging TopologyConfigs did not converge');

  const count = assembled.ordered.length;
  const documents: MergePlan['documents'] = [];
  const sources: SourceRecord[] = [];
  const outcomes = new Map<string, MergeOutcome>();
  assembled.ordered.forEach((w, index) => {
    const m = w.member;
    const generation = w.state === 'previous' ? w.previous!.generation : m.generation;
    const source: SourceRecord = {
      key: topologyConfigKey(index, count, m.namespace, m.name),
      namespace: m.namespace,
      name: m.name,
      uid: m.uid,
      generation,
      position: positionOf(w),
    };
    sources.push(source);
    documents.push({ key: source.key, text: topologyConfigDocument(source, contentOf(w)) });
    outcomes.set(memberKey(m), {
      namespace: m.namespace,
      name: m.name,
      state: w.state,
      failure: w.failure,
      key: source.key,
      appliedGeneration: generation,
    });
  });
  for (const w of working) {
    if (w.state === 'none') {
      outcomes.set(memberKey(w.member), { namespace: w.member.namespace, name: w.member.name, state: 'none', failure: w.failure });
    }
  }
  return { documents, sources, merged: assembled.merged, outcomes };
}

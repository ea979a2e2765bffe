/**
 * The candidate registry of leader election (one meta value, JSON): every replica that stands by records its
 * pod template (the `pod-template-hash` label) and, once, an order number: the order in which replicas first
 * appeared. A restarted container keeps its pod name and so its order.
 *
 * It lets a rolling update hand over instead of waiting for the lease to be freed: the leader hands the lease
 * to a live standby of ANOTHER template that appeared AFTER it (the new pod of the rollout), so the new pod
 * becomes ready while the old one still serves, and Kubernetes only then removes the old pod. Order, not
 * template, says which pod is newer: a rollback brings back an old template in new pods, with new orders;
 * a standby of the old template that was there before the leader never qualifies, so there is no ping-pong.
 */

import { META } from '../backends/meta.js';

/** Meta value of the registry. */
export const META_LEADER_CANDIDATES = META.leaderCandidates;
/** Meta value naming the standby a leader handed the lease to ('' for none). */
export const META_LEADER_SUCCESSOR = META.leaderSuccessor;

/** Entries not refreshed for this long are dropped (pods long gone); generous, so clock skew between nodes does not matter. */
export const CANDIDATE_EXPIRY_MS = 60 * 60 * 1000;

export interface Candidate {
  /** `pod-template-hash` of the replica's pod ('' outside Kubernetes: such a replica is never handed the lease). */
  template: string;
  /** Order of first appearance: higher is newer. */
  order: number;
  /** Bumped on every refresh: the leader sees a standby is alive when it changes. */
  beat: number;
  /** Wall clock (ms) of the last refresh, only for expiry. */
  at: number;
}

export interface CandidateRegistry {
  next: number;
  candidates: Record<string, Candidate>;
}

export function parseCandidates(value: Buffer | undefined): CandidateRegistry {
  if (!value?.length) return { next: 1, candidates: {} };
  try {
    const parsed = JSON.parse(value.toString('utf8')) as CandidateRegistry;
    if (typeof parsed.next === 'number' && parsed.candidates && typeof parsed.candidates === 'object') return parsed;
  } catch {
    // a damaged registry only costs the hand-over of one rollout: start afresh
  }
  return { next: 1, candidates: {} };
}

/** Records (or refreshes) `identity`, drops expired entries; returns the new registry and the identity's order. */
export function refreshCandidate(reg: CandidateRegistry, identity: string, template: string, now: number): { registry: CandidateRegistry; order: number } {
  const candidates: Record<string, Candidate> = {};
  for (const [id, c] of Object.entries(reg.candidates)) if (id === identity || now - c.at < CANDIDATE_EXPIRY_MS) candidates[id] = c;
  let next = reg.next;
  const own = candidates[identity];
  const order = own?.order ?? next++;
  candidates[identity] = { template, order, beat: (own?.beat ?? 0) + 1, at: now };
  return { registry: { next, candidates }, order };
}

/**
 * What the leader knows of standbys' liveness: a standby is alive while its beat changes, measured on the
 * leader's own clock (so clocks need not agree). A beat seen once is not yet a sign of life.
 */
export class CandidateWatch {
  private readonly seen = new Map<string, { beat: number; changedAt?: number }>();

  constructor(private readonly aliveForMs: number) {}

  /**
   * The newest live standby that should take over from a leader of `template` that appeared with `order`,
   * or undefined. Only when the leader has a template and the standby has another one.
   */
  successor(reg: CandidateRegistry, self: { identity: string; template: string; order: number }, now: number): { identity: string; template: string } | undefined {
    let best: { identity: string; candidate: Candidate } | undefined;
    for (const [identity, c] of Object.entries(reg.candidates)) {
      if (identity === self.identity) continue;
      const s = this.seen.get(identity);
      if (!s) this.seen.set(identity, { beat: c.beat });
      else if (s.beat !== c.beat) this.seen.set(identity, { beat: c.beat, changedAt: now });
      const changedAt = this.seen.get(identity)!.changedAt;
      const alive = changedAt !== undefined && now - changedAt < this.aliveForMs;
      if (!alive || !self.template || !c.template || c.template === self.template || c.order <= self.order) continue;
      if (!best || c.order > best.candidate.order) best = { identity, candidate: c };
    }
    return best && { identity: best.identity, template: best.candidate.template };
  }
}

/**
 * Hand-over for rolling updates, over a real SQLite meta store, in process: a leader gives the lease to a live
 * standby of another pod template that appeared after it, and to no other (same template, older, or not
 * beating); a lease handed to one standby is left alone by the others; the old leader, restarted under its
 * pod name, does not get the lease back.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { openBackend } from '../../middleware/src/backends/index.js';
import type { Backend } from '../../middleware/src/backends/backend.js';
import { LeaderElection, META_LEADER } from '../../middleware/src/leader/election.js';
import { CandidateWatch, CANDIDATE_EXPIRY_MS, META_LEADER_SUCCESSOR, parseCandidates, refreshCandidate } from '../../middleware/src/leader/candidates.js';
import { waitUntil } from '../support/wait.js';

const LEASE_MS = 400;
const RENEW_MS = 100;

describe('candidate registry', () => {
  it('an identity keeps its order across refreshes; a new one gets the next; long-silent entries expire', () => {
    let r = parseCandidates(undefined);
    const a = refreshCandidate(r, 'a', 't1', 1_000);
    const b = refreshCandidate(a.registry, 'b', 't2', 2_000);
    const a2 = refreshCandidate(b.registry, 'a', 't1', 3_000);
    assert.deepEqual([a.order, b.order, a2.order], [1, 2, 1]);
    assert.equal(a2.registry.candidates.a!.beat, 2);
    r = refreshCandidate(a2.registry, 'c', 't3', 2_000 + CANDIDATE_EXPIRY_MS).registry;
    assert.deepEqual(Object.keys(r.candidates).sort(), ['a', 'c'], 'b, silent for the expiry, is dropped');
    assert.equal(r.candidates.c!.order, 3, 'orders are never reused');
    assert.deepEqual(parseCandidates(Buffer.from('not json')), { next: 1, candidates: {} });
  });

  it('the leader sees a standby alive only once its beat changed, and only for a lease duration', () => {
    const watch = new CandidateWatch(1_000);
    const self = { identity: 'a', template: 't1', order: 1 };
    let r = refreshCandidate(refreshCandidate(parseCandidates(undefined), 'a', 't1', 0).registry, 'b', 't2', 0).registry;
    assert.equal(watch.successor(r, self, 0), undefined, 'one beat seen: not yet a sign of life');
    r = refreshCandidate(r, 'b', 't2', 100).registry;
    assert.deepEqual(watch.successor(r, self, 100), { identity: 'b', template: 't2' });
    assert.equal(watch.successor(r, self, 1_200), undefined, 'no beat for a lease duration: gone');
    assert.equal(watch.successor(r, { ...self, template: '' }, 100), undefined, 'a leader without a template never hands over');
  });
});

describe('leader hand-over', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hk-handover-'));
  const endpoint = `sqlite://${path.join(dir, 'state.db')}`;
  const opened: Backend[] = [];
  const stops: AbortController[] = [];
  const backend = async () => {
    const be = openBackend(endpoint);
    await be.open();
    opened.push(be);
    return be;
  };
  const election = async (identity: string, template: string) =>
    new LeaderElection({ backend: await backend(), identity, template, leaseDurationMs: LEASE_MS, renewIntervalMs: RENEW_MS });
  /** A standby waiting for the lease (it registers and beats while it waits). */
  const standBy = (e: LeaderElection) => {
    const stop = new AbortController();
    stops.push(stop);
    return { acquired: e.acquire(stop.signal), stop };
  };
  const meta = async (name: string) => (await opened[0]!.getMeta(name))?.toString() ?? '';

  after(async () => {
    for (const s of stops) s.abort();
    for (const be of opened) await be.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const lease = () => meta(META_LEADER);
  const elections: LeaderElection[] = [];
  const successorsOf = new Map<LeaderElection, string[]>();
  const lead = (e: LeaderElection) => {
    const named: string[] = [];
    successorsOf.set(e, named);
    e.startRenewing(() => assert.fail('a leader lost its lease'), (s) => named.push(s.identity));
  };
  let l: LeaderElection;
  let fresh: LeaderElection;
  const waiting: Record<string, ReturnType<typeof standBy>> = {};

  it('hands the lease to the newer standby of another template, and to no other', async () => {
    // "first" holds the lease while "ancient" (another template) and "l" register: both are older than what comes later
    const first = await election('first', 't9');
    elections.push(first);
    assert.equal(await first.acquire(), true);
    first.startRenewing(() => assert.fail('first lost its lease'));
    waiting.ancient = standBy(await election('ancient', 't0'));
    l = await election('l', 't1');
    const lWaiting = standBy(l);
    await waitUntil('both to register', async () => {
      const c = parseCandidates(await opened[0]!.getMeta('leader_candidates')).candidates;
      return c.ancient && c.l ? true : undefined;
    });
    await first.handOver('l');
    assert.equal(await lWaiting.acquired, true, 'the named standby takes the handed lease');
    assert.match(await lease(), /^\d+\/l$/);
    lead(l);

    // a second replica of the leader's template, and the older one of another template: never named
    waiting.twin = standBy(await election('twin', 't1'));
    await sleep(LEASE_MS * 3);
    assert.deepEqual(successorsOf.get(l), [], 'same template or older: no hand-over');

    // the new pod of a rollout: another template, appeared after the leader
    fresh = await election('fresh', 't2');
    waiting.fresh = standBy(fresh);
    await waitUntil('the leader to name the new pod', () => (successorsOf.get(l)!.length ? true : undefined), { timeoutMs: 10_000 });
    assert.deepEqual(successorsOf.get(l), ['fresh']);
    await l.handOver('fresh');
    assert.equal(await waiting.fresh.acquired, true);
    assert.match(await lease(), /^\d+\/fresh$/);
    assert.equal(await meta(META_LEADER_SUCCESSOR), '', 'the hand-over is consumed');
    lead(fresh);
  });

  it('the old leader, restarted under its pod name, does not get the lease back', async () => {
    waiting.l = standBy(await election('l', 't1'));
    await sleep(LEASE_MS * 3);
    assert.deepEqual(successorsOf.get(fresh), []);
    assert.match(await lease(), /^\d+\/fresh$/);
  });

  it('a lease handed to a standby that never takes it is left alone for a lease duration, then taken', async () => {
    await fresh.handOver('ghost');
    const handedAt = Date.now();
    const taken = await waitUntil('a standby to take the abandoned lease', async () => (/\/./.test(await lease()) ? lease() : undefined), { timeoutMs: 10_000, intervalMs: 20 });
    assert.ok(Date.now() - handedAt >= LEASE_MS, `taken after ${Date.now() - handedAt} ms, before a lease duration`);
    assert.match(taken, /^\d+\/(ancient|twin|l)$/);
  });
});

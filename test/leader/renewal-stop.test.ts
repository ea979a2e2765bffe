/**
 * A lease renewal that is in flight when the leader stops (`release`, `handOver`, `stop`) must end there: it
 * writes nothing, arms no further renewal and reports no lost lease, and the call waits for it so the caller
 * may close the backend right after. Over a real SQLite meta store whose write transactions can be held
 * before they start; timers are mocked, so "no further renewal" is a count of backend calls, not a time.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { openBackend } from '../../middleware/src/backends/index.js';
import type { Backend } from '../../middleware/src/backends/backend.js';
import { LeaderElection, META_LEADER, META_LEADER_RENEWED } from '../../middleware/src/leader/election.js';

const LEASE_MS = 1_000;
const RENEW_MS = 100;

/** `be` with every call counted; `holdNextBegin` keeps the next write transaction from starting until `open`. */
function gated(be: Backend) {
  let calls = 0;
  let held: { arrived: () => void; opened: Promise<void> } | undefined;
  const backend = new Proxy(be, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls++;
        const hold = prop === 'begin' ? held : undefined;
        if (!hold) return (value as (...a: unknown[]) => unknown).apply(target, args);
        held = undefined;
        hold.arrived();
        return hold.opened.then(() => target.begin());
      };
    },
  });
  const holdNextBegin = () => {
    let arrived!: () => void;
    let open!: () => void;
    const arrival = new Promise<void>((r) => (arrived = r));
    held = { arrived, opened: new Promise<void>((r) => (open = r)) };
    return { arrival, open };
  };
  return { backend, calls: () => calls, holdNextBegin };
}

/** Turns of the event loop: the backend's work (and, on old code, a re-armed renewal) gets to run. */
const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
};

describe('a lease renewal in flight when the leader stops', () => {
  const dirs: string[] = [];
  const opened: Backend[] = [];
  const open = async (endpoint: string) => {
    const be = openBackend(endpoint);
    await be.open();
    opened.push(be);
    return be;
  };

  after(async () => {
    for (const be of opened) await be.close().catch(() => undefined);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  for (const how of ['release', 'handOver', 'stop'] as const) {
    const freesLease = how !== 'stop';
    it(`${how}(): the renewal writes nothing and does not come back${freesLease ? '; another replica takes and keeps the lease' : ''}`, async (t) => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'hk-renewal-stop-'));
      dirs.push(dir);
      const endpoint = `sqlite://${path.join(dir, 'state.db')}`;
      const observer = await open(endpoint);
      const meta = async (name: string) => (await observer.getMeta(name))?.toString() ?? '';

      const a = gated(await open(endpoint));
      const leader = new LeaderElection({ backend: a.backend, identity: 'a', leaseDurationMs: LEASE_MS, renewIntervalMs: RENEW_MS });
      assert.equal(await leader.acquire(), true);
      assert.equal(await meta(META_LEADER), '1/a');
      const losses: string[] = [];
      t.mock.timers.enable({ apis: ['setTimeout'] });
      leader.startRenewing((reason) => losses.push(reason));

      // the first renewal starts and is held before its transaction begins
      const gate = a.holdNextBegin();
      t.mock.timers.tick(RENEW_MS);
      await gate.arrival;

      let returned = false;
      const stopping = Promise.resolve(how === 'release' ? leader.release() : how === 'handOver' ? leader.handOver('b') : leader.stop()).then(() => (returned = true));
      await turns(20);
      const returnedWhileHeld = returned;
      gate.open();
      await stopping;
      const renewedAfterStop = await meta(META_LEADER_RENEWED);
      const leaseAfterStop = await meta(META_LEADER);
      // `serve` closes the backend right after; stop() is checked that way, release()/handOver() against the
      // open backend, where a stray renewal would write (or report a loss) for real
      if (how === 'stop') await a.backend.close();
      const callsAfterStop = a.calls();

      let b: { election: LeaderElection; acquired: Promise<boolean>; abort: AbortController } | undefined;
      if (freesLease) {
        const election = new LeaderElection({ backend: await open(endpoint), identity: 'b', leaseDurationMs: LEASE_MS, renewIntervalMs: RENEW_MS });
        const abort = new AbortController();
        b = { election, acquired: election.acquire(abort.signal), abort };
      }
      // five lease durations pass: b takes the freed lease; a neither renews, nor reclaims, nor reports a loss
      for (let i = 0; i < (5 * LEASE_MS) / RENEW_MS; i++) {
        t.mock.timers.tick(RENEW_MS);
        await turns(5);
      }
      b?.abort.abort();

      assert.equal(a.calls() - callsAfterStop, 0, `backend calls by the old leader after ${how}() returned`);
      assert.deepEqual(losses, [], 'no lost lease is reported after a stop');
      assert.equal(renewedAfterStop, '0', 'the renewal held across the stop wrote nothing');
      assert.equal(leaseAfterStop, freesLease ? '1/' : '1/a', 'a release names nobody and keeps the epoch');
      assert.equal(returnedWhileHeld, false, `${how}() waits for the renewal in flight`);
      assert.equal(leader.isLeader, !freesLease, 'only stop() keeps the (no longer renewed) lease');
      if (b) {
        assert.equal(await b.acquired, true, 'another replica takes the freed lease');
        assert.equal(await meta(META_LEADER), '2/b', 'and keeps it, under the next epoch');
        await b.election.stop();
      }
    });
  }
});

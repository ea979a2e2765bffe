/**
 * Two operator replicas against one fake API server: only the Lease holder writes; when the holder cannot
 * renew, it stops writing and the other takes over; a replica that shuts down hands the Lease back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeKube, type RequestRecord } from '../support/fake-kube.js';
import type { TopologyConfigController } from '../../middleware/src/operator/controller.js';
import { mergedNames, rule, startOperator, statusOf, tcObject } from './harness.js';

const LEASE = { namespace: 'harikube', name: 'topology-operator', leaseDurationMs: 2000, renewDeadlineMs: 1500, retryPeriodMs: 200 };

/** Writes to the objects only the leader may touch (Lease traffic excluded). */
function writesBy(requests: RequestRecord[], identity: string, from = 0): RequestRecord[] {
  return requests
    .slice(from)
    .filter((r) => r.method !== 'GET' && !r.path.includes('/leases') && r.userAgent === `harikube-operator/${identity}` && r.status > 0);
}

function holder(fake: FakeKube): string | undefined {
  return fake.get('leases', LEASE.namespace, LEASE.name)?.spec?.holderIdentity ?? undefined;
}

test('only the leader writes; when its renewals fail the other replica takes over', async (t) => {
  const fake = await FakeKube.start();
  const replicas: Record<string, TopologyConfigController> = {
    a: startOperator(fake, { identity: 'a', leaderElection: LEASE }),
    b: startOperator(fake, { identity: 'b', leaderElection: LEASE }),
  };
  t.after(async () => {
    await Promise.all(Object.values(replicas).map((r) => r.stop()));
    await fake.stop();
  });

  const first = await fake.until('a leader', () => holder(fake));
  const second = first === 'a' ? 'b' : 'a';
  await Promise.all(Object.values(replicas).map((r) => r.waitForSync()));

  fake.create(tcObject('team-a', 'one', 1, [rule('one')]));
  await fake.until('one Active', () => statusOf(fake, 'team-a', 'one')?.deployStatus === 'Active');
  assert.ok(writesBy(fake.requests, first).length > 0, 'the leader wrote');
  assert.deepEqual(writesBy(fake.requests, second), [], 'the standby wrote nothing');
  assert.equal(replicas[first]!.isLeader(), true);
  assert.equal(replicas[second]!.isLeader(), false);
  assert.equal(replicas[second]!.isReady(), true, 'a standby is ready');

  // The leader can no longer renew (say, its network to the API server is broken for Lease updates).
  fake.fault = (req) => (req.path.includes('/leases/') && req.method === 'PUT' && req.userAgent === `harikube-operator/${first}` ? 500 : undefined);
  await fake.until(`${second} holds the lease`, () => holder(fake) === second);
  const lease = fake.get('leases', LEASE.namespace, LEASE.name)!;
  assert.equal(lease.spec.leaseTransitions, 1);
  assert.equal(replicas[first]!.isLeader(), false, 'the old leader stepped down');

  const mark = fake.requests.length;
  fake.create(tcObject('team-a', 'two', 2, [rule('two')]));
  await fake.until('two Active', () => statusOf(fake, 'team-a', 'two')?.deployStatus === 'Active');
  assert.deepEqual(mergedNames(fake.get('secrets', 'harikube', 'topology-config')), ['one', 'two']);
  assert.ok(writesBy(fake.requests, second, mark).length > 0, 'the new leader wrote');
  assert.deepEqual(writesBy(fake.requests, first, mark), [], 'the old leader wrote nothing after stepping down');
});

test('a leader that shuts down releases the lease and a standby takes it', async (t) => {
  const fake = await FakeKube.start();
  // A long lease: the standby can only win this quickly because the lease is handed back.
  const long = { ...LEASE, leaseDurationMs: 60_000, renewDeadlineMs: 30_000 };
  const a = startOperator(fake, { identity: 'a', leaderElection: long });
  await fake.until('a leader', () => holder(fake) === 'a');
  const b = startOperator(fake, { identity: 'b', leaderElection: long });
  t.after(async () => {
    await Promise.all([a.stop(), b.stop()]);
    await fake.stop();
  });
  await b.waitForSync();
  assert.equal(b.isLeader(), false);

  await a.stop();
  const released = fake.requests.find((r) => r.method === 'PUT' && r.path.includes('/leases/') && (r.body as any)?.spec?.holderIdentity === '');
  assert.ok(released, 'a wrote an empty holder on shutdown');
  await fake.until('b leader', () => holder(fake) === 'b', 10_000);
  fake.create(tcObject('team-a', 'one', 1, [rule('one')]));
  await fake.until('one Active', () => statusOf(fake, 'team-a', 'one')?.deployStatus === 'Active');
});

/**
 * Ready means routed, on the operator's side (the middleware's side is test/e2e/topology-secret.test.ts): the
 * status follows the apply reports of every middleware reading the target Secret.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { FakeKube } from '../support/fake-kube.js';
import { eventsFor, mergedNames, reportAsMiddleware, rule, startOperator, statusOf, tcObject } from './harness.js';

async function setup(t: TestContext) {
  const fake = await FakeKube.start();
  const operator = startOperator(fake, { waitForMiddleware: true, secretNamespaces: ['harikube'] });
  t.after(async () => {
    await operator.stop();
    await fake.stop();
  });
  return fake;
}

const status = (fake: FakeKube, ns: string, name: string, want: string) =>
  fake.until(`${ns}/${name} ${want}`, () => {
    const s = statusOf(fake, ns, name);
    return s?.deployStatus === want ? s : undefined;
  });

test('Active only when every middleware reading the Secret applied it; Migrating while one moves keys', async (t) => {
  const fake = await setup(t);
  fake.create(tcObject('team-a', 'app', 1, [rule('pods')]));
  await fake.until('written', () => mergedNames(fake.get('secrets', 'harikube', 'topology-config')).length === 1);
  reportAsMiddleware(fake, { middleware: '111' });
  reportAsMiddleware(fake, { middleware: '222', state: 'Migrating', progress: '120 of 500 keys from "default backend" to "pods"' });
  const migrating = await status(fake, 'team-a', 'app', 'Migrating');
  assert.match(migrating.deployStatusReason, /^rules in effect; middleware 222 is moving the keys stored before: 120 of 500 keys/);
  assert.deepEqual([migrating.conditions[0].status, migrating.conditions[0].reason], ['False', 'Migrating']);
  reportAsMiddleware(fake, { middleware: '222' });
  const active = await status(fake, 'team-a', 'app', 'Active');
  assert.match(active.deployStatusReason, /rules applied by middleware 111, 222 from Secret harikube\/topology-config/);

  // a spec change is Pending until the middlewares applied the new document
  const app = fake.get('topologyconfigs', 'team-a', 'app')!;
  app.spec.backends = [rule('pods'), rule('configmaps')];
  fake.update(app);
  const pending = await fake.until('Pending at generation 2', () => {
    const s = statusOf(fake, 'team-a', 'app');
    return s?.observedGeneration === 2 && s.deployStatus === 'Pending' ? s : undefined;
  });
  assert.match(pending.deployStatusReason, /waiting for middleware 111, 222 to apply them/);
  reportAsMiddleware(fake, { middleware: '111' });
  const half = await fake.until('one applied', () => (statusOf(fake, 'team-a', 'app')?.deployStatusReason?.includes('waiting for middleware 222 to') ? true : undefined));
  assert.ok(half);
  reportAsMiddleware(fake, { middleware: '222' });
  await status(fake, 'team-a', 'app', 'Active');
});

test('a refusal fails the resource it names and keeps the others Pending until the Secret without it is applied', async (t) => {
  const fake = await setup(t);
  fake.create(tcObject('team-a', 'good', 1, [rule('pods')]));
  fake.create(tcObject('team-b', 'bad', 2, [rule('moves', 'configmaps/')]));
  await fake.until('both written', () => mergedNames(fake.get('secrets', 'harikube', 'topology-config')).length === 2);
  reportAsMiddleware(fake, { state: 'Refused', reason: 'it would move existing keys: 3 key(s) from default backend to "moves"', rules: ['moves'] });
  const failed = await status(fake, 'team-b', 'bad', 'Failed');
  assert.match(failed.deployStatusReason, /^middleware 4242 refused these rules: it would move existing keys/);
  assert.equal(failed.conditions[0].reason, 'RefusedByMiddleware');
  // the refused rules leave the Secret; the other resource's go live once the middleware applied that
  await fake.until('Secret without the refused rules', () => JSON.stringify(mergedNames(fake.get('secrets', 'harikube', 'topology-config'))) === '["pods"]');
  assert.equal(statusOf(fake, 'team-a', 'good')!.deployStatus, 'Pending');
  reportAsMiddleware(fake);
  await status(fake, 'team-a', 'good', 'Active');
  assert.equal(statusOf(fake, 'team-b', 'bad')!.deployStatus, 'Failed', 'stays Failed until its spec changes');
  // a new generation is tried again
  const bad = fake.get('topologyconfigs', 'team-b', 'bad')!;
  bad.spec.backends = [rule('fixed', 'fixed/')];
  fake.update(bad);
  await fake.until('fixed written', () => mergedNames(fake.get('secrets', 'harikube', 'topology-config')).includes('fixed'));
  reportAsMiddleware(fake);
  await status(fake, 'team-b', 'bad', 'Active');
});

test('Migrating is the resource whose rules move, with the progress; another resource in the Secret stays Active; then Active', async (t) => {
  const fake = await setup(t);
  fake.create(tcObject('team-a', 'moves', 1, [rule('pods')]));
  fake.create(tcObject('team-b', 'still', 2, [rule('leases')]));
  await fake.until('both written', () => mergedNames(fake.get('secrets', 'harikube', 'topology-config')).length === 2);
  reportAsMiddleware(fake);
  await status(fake, 'team-a', 'moves', 'Active');
  await status(fake, 'team-b', 'still', 'Active');

  // a new rule of team-a's that routes existing keys: the middleware applies it and counts what moves
  const moves = fake.get('topologyconfigs', 'team-a', 'moves')!;
  moves.spec.backends = [rule('pods'), rule('configmaps')];
  fake.update(moves);
  await fake.until('configmaps written', () => mergedNames(fake.get('secrets', 'harikube', 'topology-config')).includes('configmaps'));
  reportAsMiddleware(fake, { state: 'Migrating', progress: 'counting the keys to move out of the default backend' });
  // not counted yet: every document of the reading may be involved
  const counting = await status(fake, 'team-b', 'still', 'Migrating');
  assert.match(counting.deployStatusReason, /counting the keys to move out of the default backend/);
  // counted: the keys go into "configmaps", team-a's rule; team-b is not involved
  reportAsMiddleware(fake, { state: 'Migrating', rules: ['configmaps'], progress: '1000 of 1200 keys moved out of the default backend into rule "configmaps" (moving, 2000 keys/s, about 1s left)' });
  await status(fake, 'team-b', 'still', 'Active');
  const migrating = await fake.until('team-a Migrating at generation 2 with progress', () => {
    const s = statusOf(fake, 'team-a', 'moves');
    return s?.observedGeneration === 2 && s.deployStatus === 'Migrating' && /1000 of 1200 keys/.test(s.deployStatusReason) ? s : undefined;
  });
  const ready = migrating.conditions.find((c: any) => c.type === 'Ready');
  assert.deepEqual([ready.status, ready.reason], ['False', 'Migrating'], 'not Ready while keys move: `pulumi up` waits');
  assert.match(ready.message, /into rule "configmaps"/);
  assert.ok(eventsFor(fake, 'moves').some((e) => e.reason === 'Migrating' && e.type === 'Normal'), 'an Event says the migration started');

  // the migration is done: the report drops it, the resource is Active (and announced Applied)
  reportAsMiddleware(fake);
  const active = await status(fake, 'team-a', 'moves', 'Active');
  assert.equal(active.observedGeneration, 2);
  assert.equal(active.conditions.find((c: any) => c.type === 'Ready').status, 'True');
  assert.ok(eventsFor(fake, 'moves').some((e) => e.reason === 'Applied' && /rules applied by middleware 4242/.test(e.message)));
});

test('a deleted resource keeps its finalizer until every middleware applied the Secret without it and moved its keys out', async (t) => {
  const fake = await setup(t);
  fake.create(tcObject('team-a', 'shop', 1, [rule('orders')]));
  fake.create(tcObject('team-b', 'stays', 2, [rule('leases')]));
  await fake.until('both written', () => mergedNames(fake.get('secrets', 'harikube', 'topology-config')).length === 2);
  reportAsMiddleware(fake, { middleware: '111' });
  reportAsMiddleware(fake, { middleware: '222' });
  await status(fake, 'team-a', 'shop', 'Active');

  fake.delete('topologyconfigs', 'team-a', 'shop');
  await fake.until('rules out of the Secret', () => (mergedNames(fake.get('secrets', 'harikube', 'topology-config')).join() === 'leases' ? true : undefined));
  // nobody applied the Secret without "orders" yet: keys still go to its database
  const waiting = await status(fake, 'team-a', 'shop', 'Pending');
  assert.match(waiting.deployStatusReason, /being deleted: .*waiting for middleware 111, 222 to apply it/);
  assert.ok(fake.get('topologyconfigs', 'team-a', 'shop')?.metadata.finalizers?.length, 'held while a middleware still routes to its database');

  reportAsMiddleware(fake, { middleware: '111' });
  reportAsMiddleware(fake, { middleware: '222', state: 'Migrating', rules: ['orders'], progress: '10 of 40 keys moved out of rule "orders"' });
  const moving = await status(fake, 'team-a', 'shop', 'Migrating');
  assert.match(moving.deployStatusReason, /middleware 222 is moving the keys of its rules out of their database: 10 of 40 keys/);
  assert.ok(fake.get('topologyconfigs', 'team-a', 'shop')?.metadata.finalizers?.length, 'held while its keys move out');
  // another team's migration does not hold it, but its own does until the report drops it
  reportAsMiddleware(fake, { middleware: '222' });
  await fake.until('released and gone', () => (!fake.get('topologyconfigs', 'team-a', 'shop') ? true : undefined));
  assert.equal(statusOf(fake, 'team-b', 'stays')?.deployStatus, 'Active');
});

test('a deleted resource whose keys are not its own migration is released once the Secret without it is applied', async (t) => {
  const fake = await setup(t);
  fake.create(tcObject('team-a', 'shop', 1, [rule('orders')]));
  fake.create(tcObject('team-b', 'moving', 2, [rule('leases')]));
  await fake.until('both written', () => mergedNames(fake.get('secrets', 'harikube', 'topology-config')).length === 2);
  reportAsMiddleware(fake);
  await status(fake, 'team-a', 'shop', 'Active');
  fake.delete('topologyconfigs', 'team-a', 'shop');
  await fake.until('rules out of the Secret', () => (mergedNames(fake.get('secrets', 'harikube', 'topology-config')).join() === 'leases' ? true : undefined));
  reportAsMiddleware(fake, { state: 'Migrating', rules: ['leases'], progress: '1 of 2 keys moved into rule "leases"' });
  await fake.until('released and gone', () => (!fake.get('topologyconfigs', 'team-a', 'shop') ? true : undefined));
});

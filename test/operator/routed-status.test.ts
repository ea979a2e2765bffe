/**
 * Ready means routed, on the operator's side (the middleware's side is test/e2e/topology-secret.test.ts): the
 * status follows the apply reports of every middleware reading the target Secret.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { FakeKube } from '../support/fake-kube.js';
import { mergedNames, reportAsMiddleware, rule, startOperator, statusOf, tcObject } from './harness.js';

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
  assert.match(migrating.deployStatusReason, /middleware 222 is moving keys for these rules: 120 of 500 keys/);
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

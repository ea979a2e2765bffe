/**
 * The operator against the fake API server: what users see (the Secret, status, Events, finalizers) for
 * create, update, reorder, conflict, invalid update, delete, sealed endpoints, foreign Secrets, drift, and an
 * API server restart in the middle of a watch.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FakeKube } from '../support/fake-kube.js';
import { sealEndpoint } from '../../middleware/src/operator/decrypt.js';
import {
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  SECRET_FINALIZER,
  TOPOLOGYCONFIG_FINALIZER,
} from '../../middleware/src/operator/markers.js';
import { eventsFor, logLines, mergedNames, rule, secretDocuments, startOperator, statusOf, tcObject } from './harness.js';

async function setup(t: TestContext) {
  const fake = await FakeKube.start();
  const operator = startOperator(fake);
  t.after(async () => {
    await operator.stop();
    await fake.stop();
  });
  return { fake, operator };
}

const topologySecret = (fake: FakeKube) => fake.get('secrets', 'harikube', 'topology-config');

test('a new TopologyConfig is written to its Secret and reported Active, Ready, with an Applied event', async (t) => {
  const { fake } = await setup(t);
  fake.create(tcObject('team-a', 'pods', 10, [rule('pods')]));

  const status = await fake.until('team-a/pods Active', () => {
    const s = statusOf(fake, 'team-a', 'pods');
    return s?.deployStatus === 'Active' ? s : undefined;
  });
  assert.equal(status.observedGeneration, 1);
  const ready = status.conditions.find((c: any) => c.type === 'Ready');
  assert.equal(ready.status, 'True');
  assert.equal(ready.reason, 'Applied');
  assert.match(status.deployStatusReason, /harikube\/topology-config/);

  const secret = topologySecret(fake)!;
  assert.deepEqual(secretDocuments(secret), [['0001-team-a.pods.yaml', ['pods']]]);
  const doc = Buffer.from(secret.data['0001-team-a.pods.yaml'], 'base64').toString('utf8');
  assert.match(doc, /endpoint: sqlite:\/\/\.\/db\/pods\.db/);
  assert.equal(secret.metadata.labels[MANAGED_BY_LABEL], MANAGED_BY_VALUE);
  assert.deepEqual(secret.metadata.finalizers, [SECRET_FINALIZER]);
  assert.deepEqual(fake.get('topologyconfigs', 'team-a', 'pods')!.metadata.finalizers, [TOPOLOGYCONFIG_FINALIZER]);

  await fake.until('Applied event', () => eventsFor(fake, 'pods').some((e) => e.reason === 'Applied' && e.type === 'Normal'));
  const event = fake.list('events').find((e) => e.reason === 'Applied')!;
  assert.equal(event.metadata.namespace, 'team-a');
  assert.deepEqual(
    [event.involvedObject.apiVersion, event.involvedObject.kind, event.involvedObject.name, event.involvedObject.uid],
    ['harikube.info/v1', 'TopologyConfig', 'pods', fake.get('topologyconfigs', 'team-a', 'pods')!.metadata.uid],
  );
  assert.equal(event.source.component, 'harikube-topology-operator');
});

test('a spec update rewrites the Secret and observedGeneration follows the generation', async (t) => {
  const { fake } = await setup(t);
  fake.create(tcObject('team-a', 'app', 10, [rule('pods')]));
  await fake.until('Active', () => statusOf(fake, 'team-a', 'app')?.deployStatus === 'Active');

  const current = fake.get('topologyconfigs', 'team-a', 'app')!;
  current.spec.backends = [rule('pods'), rule('configmaps')];
  fake.update(current);

  const status = await fake.until('observedGeneration 2', () => {
    const s = statusOf(fake, 'team-a', 'app');
    return s?.observedGeneration === 2 ? s : undefined;
  });
  assert.equal(status.deployStatus, 'Active');
  assert.deepEqual(mergedNames(topologySecret(fake)), ['pods', 'configmaps']);
});

test('rules are ordered by position, ties by namespace/name, and reordering changes the key order', async (t) => {
  const { fake } = await setup(t);
  fake.create(tcObject('b-ns', 'one', 20, [rule('b-one')]));
  fake.create(tcObject('a-ns', 'two', 20, [rule('a-two')]));
  fake.create(tcObject('c-ns', 'three', 5, [rule('c-three')]));
  await fake.until('three rules', () => mergedNames(topologySecret(fake)).length === 3);
  assert.deepEqual(secretDocuments(topologySecret(fake)), [
    ['0001-c-ns.three.yaml', ['c-three']],
    ['0002-a-ns.two.yaml', ['a-two']],
    ['0003-b-ns.one.yaml', ['b-one']],
  ]);

  const three = fake.get('topologyconfigs', 'c-ns', 'three')!;
  three.spec.position = 30;
  fake.update(three);
  await fake.until('c-three last', () => mergedNames(topologySecret(fake)).at(-1) === 'c-three');
  assert.deepEqual(
    secretDocuments(topologySecret(fake)).map(([k]) => k),
    ['0001-a-ns.two.yaml', '0002-b-ns.one.yaml', '0003-c-ns.three.yaml'],
  );
});

test('a resource that conflicts with another fails alone, naming the rule, field and other resource', async (t) => {
  const { fake } = await setup(t);
  fake.create(tcObject('team-a', 'first', 10, [rule('pods')]));
  await fake.until('first Active', () => statusOf(fake, 'team-a', 'first')?.deployStatus === 'Active');
  fake.create(tcObject('team-b', 'second', 5, [rule('secrets'), { ...rule('pods'), endpoint: 'sqlite://./db/other.db' }]));
  fake.create(tcObject('team-c', 'third', 20, [rule('configmaps')]));

  const failed = await fake.until('second Failed', () => {
    const s = statusOf(fake, 'team-b', 'second');
    return s?.deployStatus === 'Failed' ? s : undefined;
  });
  assert.match(failed.deployStatusReason, /backends\[1\] \(name "pods"\)/);
  assert.match(failed.deployStatusReason, /field "name"/);
  assert.match(failed.deployStatusReason, /team-a\/first/);
  assert.equal(failed.conditions.find((c: any) => c.type === 'Ready').status, 'False');
  await fake.until('third Active', () => statusOf(fake, 'team-c', 'third')?.deployStatus === 'Active');
  assert.equal(statusOf(fake, 'team-a', 'first')!.deployStatus, 'Active');
  assert.deepEqual(mergedNames(topologySecret(fake)), ['pods', 'configmaps']);
  await fake.until('Failed warning event', () => eventsFor(fake, 'second').some((e) => e.reason === 'Failed' && e.type === 'Warning'));

  // Resolving the conflict makes it Active.
  const second = fake.get('topologyconfigs', 'team-b', 'second')!;
  second.spec.backends = [rule('secrets')];
  fake.update(second);
  await fake.until('second Active', () => statusOf(fake, 'team-b', 'second')?.deployStatus === 'Active');
  assert.deepEqual(mergedNames(topologySecret(fake)), ['secrets', 'pods', 'configmaps']);
});

test('an invalid update fails the resource and keeps its last applied rules in the Secret', async (t) => {
  const { fake } = await setup(t);
  fake.create(tcObject('team-a', 'app', 10, [rule('pods')]));
  await fake.until('Active', () => statusOf(fake, 'team-a', 'app')?.deployStatus === 'Active');

  const current = fake.get('topologyconfigs', 'team-a', 'app')!;
  current.spec.backends = [{ name: 'rbac', endpoint: 'sqlite://./db/rbac.db', regexp: { key: '(unclosed' } }];
  fake.update(current);
  const status = await fake.until('Failed', () => {
    const s = statusOf(fake, 'team-a', 'app');
    return s?.deployStatus === 'Failed' ? s : undefined;
  });
  assert.match(status.deployStatusReason, /backends\[0\] \(name "rbac"\): field "regexp.key"/);
  assert.match(status.deployStatusReason, /generation 1 stay applied/);
  assert.equal(status.observedGeneration, 2);
  assert.deepEqual(mergedNames(topologySecret(fake)), ['pods']);
});

test('deleting a TopologyConfig removes its rules, then releases its finalizer', async (t) => {
  const { fake } = await setup(t);
  fake.create(tcObject('team-a', 'keep', 1, [rule('keep')]));
  fake.create(tcObject('team-a', 'gone', 2, [rule('gone')]));
  await fake.until('both rules', () => mergedNames(topologySecret(fake)).length === 2);
  await fake.until('finalizer on gone', () => fake.get('topologyconfigs', 'team-a', 'gone')?.metadata.finalizers);
  await fake.until('gone Active', () => statusOf(fake, 'team-a', 'gone')?.deployStatus === 'Active');

  fake.delete('topologyconfigs', 'team-a', 'gone');
  await fake.until('gone deleted', () => !fake.get('topologyconfigs', 'team-a', 'gone'));
  assert.deepEqual(mergedNames(topologySecret(fake)), ['keep']);
  await fake.until('Removed event', () => eventsFor(fake, 'gone').some((e) => e.reason === 'Removed' && e.type === 'Normal'));

  // With nothing left targeting it, the Secret is empty and no longer held by the operator's finalizer.
  fake.delete('topologyconfigs', 'team-a', 'keep');
  const secret = await fake.until('empty Secret without finalizer', () => {
    const s = topologySecret(fake);
    return s && Object.keys(s.data ?? {}).length === 0 && !s.metadata.finalizers ? s : undefined;
  });
  assert.ok(secret);
  fake.delete('secrets', 'harikube', 'topology-config');
  assert.equal(topologySecret(fake), undefined);
});

test('sealed endpoints are decrypted into the Secret and never appear in status, events or logs', async (t) => {
  const { fake } = await setup(t);
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);
  const password = `pw-${randomBytes(6).toString('hex')}`;
  const plain = `postgres://app:${password}@db.internal:5432/pods`;
  fake.create({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'keys', namespace: 'harikube' },
    data: { '2024': oldKey.toString('base64'), '2025': Buffer.from(newKey.toString('base64')).toString('base64') },
  });
  fake.create(
    tcObject('team-a', 'sealed', 1, [{ name: 'pods', endpoint: sealEndpoint(plain, oldKey), prefix: { prefix: 'pods' } }], {
      endpointDecryptSecret: 'harikube/keys',
    }),
  );
  await fake.until('sealed Active', () => statusOf(fake, 'team-a', 'sealed')?.deployStatus === 'Active');
  const doc = Buffer.from(topologySecret(fake)!.data['0001-team-a.sealed.yaml'], 'base64').toString('utf8');
  assert.ok(doc.includes(plain), 'the Secret holds the plaintext endpoint');

  // A value sealed with a key the Secret does not hold fails, without showing the endpoint.
  fake.create(
    tcObject(
      'team-b',
      'wrongkey',
      2,
      [{ name: 'more', endpoint: sealEndpoint(`mysql://root:${password}@tcp(db:3306)/more`, randomBytes(32)), prefix: { prefix: 'more' } }],
      { endpointDecryptSecret: 'harikube/keys' },
    ),
  );
  const failed = await fake.until('wrongkey Failed', () => {
    const s = statusOf(fake, 'team-b', 'wrongkey');
    return s?.deployStatus === 'Failed' ? s : undefined;
  });
  assert.match(failed.deployStatusReason, /backends\[0\] \(name "more"\): field "endpoint": cannot be decrypted with any of the 2 key\(s\)/);
  await fake.until('Failed event', () => eventsFor(fake, 'wrongkey').some((e) => e.reason === 'Failed'));

  const visible = [
    JSON.stringify(fake.list('topologyconfigs').map((o) => o.status)),
    JSON.stringify(fake.list('events')),
    logLines.join('\n'),
  ].join('\n');
  assert.ok(!visible.includes(password), 'no password in status, events or logs');
  assert.ok(!visible.includes('db.internal'), 'no part of a sealed endpoint in status, events or logs');
});

test('a missing decrypt Secret is a waiting state (Pending) that recovers as soon as the Secret appears', async (t) => {
  const fake = await FakeKube.start();
  // No retry timer and no resync can help within this test: only watching the decrypt Secret can.
  const operator = startOperator(fake, { transientRetryMs: 3_600_000, resyncMs: 3_600_000 });
  t.after(async () => {
    await operator.stop();
    await fake.stop();
  });
  const key = randomBytes(32);
  fake.create(
    tcObject('team-a', 'later', 1, [{ name: 'pods', endpoint: sealEndpoint('sqlite://./db/pods.db', key), prefix: { prefix: 'pods' } }], {
      endpointDecryptSecret: 'harikube/keys-later',
    }),
  );
  const waiting = await fake.until('Pending for missing keys', () => {
    const s = statusOf(fake, 'team-a', 'later');
    return s?.deployStatus === 'Pending' ? s : undefined;
  });
  assert.match(waiting.deployStatusReason, /waiting: endpointDecryptSecret harikube\/keys-later: Secret not found/);
  const ready = waiting.conditions.find((c: any) => c.type === 'Ready');
  assert.deepEqual([ready.status, ready.reason], ['Unknown', 'WaitingForDecryptSecret']);
  assert.ok(!eventsFor(fake, 'later').some((e) => e.type === 'Warning'), 'waiting is not a failure');
  // let the reconciles caused by the operator's own writes (the topology Secret it created) finish, so only
  // the watch of the decrypt Secret can start the next one
  await new Promise((r) => setTimeout(r, 1500));
  fake.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'keys-later', namespace: 'harikube' }, data: { k: key.toString('base64') } });
  await fake.until('Active after the keys appear', () => statusOf(fake, 'team-a', 'later')?.deployStatus === 'Active', 5000);
  assert.deepEqual(mergedNames(topologySecret(fake)), ['pods']);
});

test('key rotation: add a key, re-seal with it, retire the old one; the operator notices each change of the decrypt Secret at once', async (t) => {
  const fake = await FakeKube.start();
  const operator = startOperator(fake, { transientRetryMs: 3_600_000, resyncMs: 3_600_000, secretNamespaces: ['harikube'] });
  t.after(async () => {
    await operator.stop();
    await fake.stop();
  });
  const [k1, k2] = [randomBytes(32), randomBytes(32)];
  const plain = (db: string) => `sqlite://./db/${db}.db`;
  const keys = (data: Record<string, Buffer>) => Object.fromEntries(Object.entries(data).map(([n, k]) => [n, k.toString('base64')]));
  fake.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'keys', namespace: 'harikube' }, data: keys({ 'key-1': k1 }) });
  const sealed = (name: string, k: Buffer) =>
    tcObject('team-a', name, name === 'shop' ? 1 : 2, [{ name, endpoint: sealEndpoint(plain(name), k), prefix: { prefix: `${name}/` } }], {
      endpointDecryptSecret: 'harikube/keys',
    });
  fake.create(sealed('shop', k1));
  fake.create(sealed('late', k1));
  await fake.until('both Active with key-1', () => ['shop', 'late'].every((n) => statusOf(fake, 'team-a', n)?.deployStatus === 'Active'));

  // 1. add key-2 next to key-1
  const secret = fake.get('secrets', 'harikube', 'keys')!;
  secret.data = keys({ 'key-1': k1, 'key-2': k2 });
  fake.update(secret);
  // 2. re-seal one resource with key-2 (what `pulumi up` of an app stack does after the platform's active key changed)
  const shop = fake.get('topologyconfigs', 'team-a', 'shop')!;
  shop.spec = sealed('shop', k2).spec;
  fake.update(shop);
  await fake.until('shop Active at generation 2', () => {
    const s = statusOf(fake, 'team-a', 'shop');
    return s?.deployStatus === 'Active' && s.observedGeneration === 2;
  });
  // 3. retire key-1: the resource still sealed with it fails at once (watched), naming the keys it tried
  await new Promise((r) => setTimeout(r, 1500)); // nothing else in flight: only the watch can notice
  const again = fake.get('secrets', 'harikube', 'keys')!;
  again.data = keys({ 'key-2': k2 });
  fake.update(again);
  const failed = await fake.until('late Failed after key-1 is retired', () => {
    const s = statusOf(fake, 'team-a', 'late');
    return s?.deployStatus === 'Failed' ? s : undefined;
  }, 5000);
  assert.match(failed.deployStatusReason, /cannot be decrypted with any of the 1 key\(s\) \(key-2\)/);
  assert.equal(statusOf(fake, 'team-a', 'shop')!.deployStatus, 'Active');
  // its last applied rules stay in the Secret: retiring a key too early never strands data
  assert.deepEqual(mergedNames(topologySecret(fake)), ['shop', 'late']);
});

test('with --secret-namespaces, Secrets elsewhere are refused with a reason', async (t) => {
  const fake = await FakeKube.start();
  const operator = startOperator(fake, { secretNamespaces: ['harikube'] });
  t.after(async () => {
    await operator.stop();
    await fake.stop();
  });
  fake.create(tcObject('team-a', 'elsewhere', 1, [rule('pods')], { targetSecret: 'team-a/topology' }));
  fake.create(
    tcObject('team-b', 'keys-elsewhere', 2, [{ name: 'x', endpoint: sealEndpoint('sqlite://./db/x.db', randomBytes(32)), prefix: { prefix: 'x/' } }], {
      endpointDecryptSecret: 'team-b/keys',
    }),
  );
  const a = await fake.until('elsewhere Failed', () => (statusOf(fake, 'team-a', 'elsewhere')?.deployStatus === 'Failed' ? statusOf(fake, 'team-a', 'elsewhere') : undefined));
  assert.match(a!.deployStatusReason, /only in namespace\(s\) harikube \(--secret-namespaces\), not team-a\/topology/);
  const b = await fake.until('keys-elsewhere Failed', () => (statusOf(fake, 'team-b', 'keys-elsewhere')?.deployStatus === 'Failed' ? statusOf(fake, 'team-b', 'keys-elsewhere') : undefined));
  assert.match(b!.deployStatusReason, /not team-b\/keys/);
  assert.ok(!fake.requests.some((r) => r.path.includes('/namespaces/team-a/secrets') || r.path.includes('/namespaces/team-b/secrets') || r.path === '/api/v1/secrets'));
});

test('a target Secret that exists with data and is not managed is left alone; its resources fail', async (t) => {
  const { fake } = await setup(t);
  fake.create({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'handmade', namespace: 'harikube' },
    data: { 'topology.yaml': Buffer.from('backends: []\n').toString('base64') },
  });
  fake.create(tcObject('team-a', 'app', 1, [rule('pods')], { targetSecret: 'harikube/handmade' }));
  const status = await fake.until('Failed', () => {
    const s = statusOf(fake, 'team-a', 'app');
    return s?.deployStatus === 'Failed' ? s : undefined;
  });
  assert.match(status.deployStatusReason, /harikube\/handmade already exists and is not managed/);
  assert.deepEqual(Object.keys(fake.get('secrets', 'harikube', 'handmade')!.data), ['topology.yaml']);
});

test('an empty pre-created target Secret is adopted', async (t) => {
  const { fake } = await setup(t);
  fake.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'topology-config', namespace: 'harikube', labels: { team: 'platform' } } });
  fake.create(tcObject('team-a', 'app', 1, [rule('pods')]));
  await fake.until('Active', () => statusOf(fake, 'team-a', 'app')?.deployStatus === 'Active');
  const secret = topologySecret(fake)!;
  assert.deepEqual(mergedNames(secret), ['pods']);
  assert.equal(secret.metadata.labels.team, 'platform', 'existing labels are kept');
});

test('a hand-edited topology Secret is put back', async (t) => {
  const { fake } = await setup(t);
  fake.create(tcObject('team-a', 'app', 1, [rule('pods')]));
  await fake.until('Active', () => statusOf(fake, 'team-a', 'app')?.deployStatus === 'Active');
  const edited = topologySecret(fake)!;
  edited.data = { 'zz-manual.yaml': Buffer.from('backends: []\n').toString('base64') };
  fake.update(edited);
  await fake.until('restored', () => {
    const s = topologySecret(fake);
    return s && Object.keys(s.data).join() === '0001-team-a.app.yaml' ? s : undefined;
  });
});

test('after an API server restart that loses watch history, the informer re-lists and continues', async (t) => {
  const { fake } = await setup(t);
  fake.create(tcObject('team-a', 'one', 1, [rule('one')]));
  await fake.until('one Active', () => statusOf(fake, 'team-a', 'one')?.deployStatus === 'Active');

  // While the server is down a resource appears; afterwards the clients' resourceVersions are compacted.
  await fake.restart({
    forgetHistory: true,
    whileDown: () => fake.create(tcObject('team-a', 'two', 2, [rule('two')])),
  });
  await fake.until('two Active after restart', () => statusOf(fake, 'team-a', 'two')?.deployStatus === 'Active');
  assert.deepEqual(mergedNames(topologySecret(fake)), ['one', 'two']);
  const relists = fake.requests.filter((r) => r.method === 'GET' && r.path.endsWith('/topologyconfigs') && !r.query.includes('watch=true'));
  assert.ok(relists.length >= 2, 'TopologyConfigs were listed again');

  // Watches cut without losing history resume from the last resourceVersion, and new changes still arrive.
  fake.closeWatches();
  fake.create(tcObject('team-a', 'three', 3, [rule('three')]));
  await fake.until('three Active after cut watches', () => statusOf(fake, 'team-a', 'three')?.deployStatus === 'Active');
  assert.deepEqual(mergedNames(topologySecret(fake)), ['one', 'two', 'three']);
});

test('TopologyConfigs can target different Secrets, and moving one moves its rules', async (t) => {
  const { fake } = await setup(t);
  fake.create(tcObject('team-a', 'app', 1, [rule('pods')], { targetSecret: 'harikube/first' }));
  await fake.until('in first', () => mergedNames(fake.get('secrets', 'harikube', 'first')).includes('pods'));
  const app = fake.get('topologyconfigs', 'team-a', 'app')!;
  app.spec.targetSecret = 'harikube/second';
  fake.update(app);
  await fake.until('moved to second', () => mergedNames(fake.get('secrets', 'harikube', 'second')).includes('pods'));
  await fake.until('gone from first', () => mergedNames(fake.get('secrets', 'harikube', 'first')).length === 0);
  assert.equal(statusOf(fake, 'team-a', 'app')!.deployStatus, 'Active');
});

test('a targetSecret that is not namespace/name (possible with an old CRD) fails the resource, writes nothing', async (t) => {
  const { fake } = await setup(t);
  const obj = tcObject('team-a', 'odd', 1, [rule('pods')]);
  obj.spec.targetSecret = 'no-slash';
  fake.create(obj);
  const status = await fake.until('Failed', () => {
    const s = statusOf(fake, 'team-a', 'odd');
    return s?.deployStatus === 'Failed' ? s : undefined;
  });
  assert.match(status.deployStatusReason, /targetSecret "no-slash" is not namespace\/name/);
  assert.deepEqual(fake.list('secrets'), []);
});

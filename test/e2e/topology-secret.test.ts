/**
 * Issue 3 end to end: the operator merges TopologyConfigs into the topology Secret; that Secret, stored the
 * way kube-apiserver stores it (protobuf under /registry/secrets/<ns>/<name>) in the real middleware
 * process, is picked up live by `secret://` and new keys land in the backends it declares. A refused change
 * (it would move existing keys) leaves routing as it was, and the routing survives a restart.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeStoredSecret, encodeStoredSecretJson, type SecretToStore } from '../../middleware/src/topology/secret-codec.js';
import type { BackendRule } from '../../middleware/src/topology/schema.js';
import { startOperator, statusOf, tcObject } from '../operator/harness.js';
import { b } from '../support/bytes.js';
import { FakeKube } from '../support/fake-kube.js';
import { EtcdClient } from '../support/grpc.js';
import { Middleware } from '../support/middleware.js';
import { waitUntil } from '../support/wait.js';
import { keysIn, metricValue } from '../support/routed.js';

const SECRET_KEY = '/registry/secrets/harikube/topology-config';


/** The operator's Secret (as the API returns it) in kube-apiserver's storage form. */
function stored(secret: Record<string, any>, json: boolean): Buffer {
  const s: SecretToStore = {
    name: secret.metadata.name,
    namespace: secret.metadata.namespace,
    uid: secret.metadata.uid,
    labels: secret.metadata.labels,
    annotations: secret.metadata.annotations,
    finalizers: secret.metadata.finalizers,
    type: secret.type,
    data: Object.fromEntries(Object.entries<string>(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  };
  return json ? encodeStoredSecretJson(s) : encodeStoredSecret(s);
}


describe('operator Secret -> middleware secret:// routing', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hk-secret-e2e-'));
  const file = (name: string) => path.join(dir, `${name}.db`);
  const rule = (name: string, match: Partial<BackendRule>): BackendRule => ({ name, endpoint: `sqlite://${file(name)}`, ...match }) as BackendRule;
  let fake: FakeKube;
  let operator: ReturnType<typeof startOperator>;
  let middleware: Middleware;
  let client: EtcdClient;
  let secretVersion = 0;

  /** Does what kube-apiserver does when the operator writes the Secret: stores it in the middleware. */
  async function syncSecret(json = false): Promise<void> {
    const secret = await fake.until('the topology Secret', () => {
      const s = fake.get('secrets', 'harikube', 'topology-config');
      return s && Number(s.metadata.resourceVersion) > secretVersion ? s : undefined;
    });
    secretVersion = Number(secret.metadata.resourceVersion);
    await client.put({ key: b(SECRET_KEY), value: stored(secret, json) });
  }

  before(async () => {
    fake = await FakeKube.start();
    operator = startOperator(fake);
    middleware = await Middleware.start({
      endpoint: `sqlite://${file('default')}`,
      extraArgs: ['--topology-config', 'secret://harikube/topology-config'],
    });
    client = new EtcdClient(middleware.address);
  });

  after(async () => {
    client?.close();
    await middleware?.stop();
    await operator?.stop();
    await fake?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('without the Secret everything stays on the default backend', async () => {
    await client.put({ key: b('/registry/configmaps/default/early'), value: b('x') });
    assert.deepEqual(keysIn(file('default')), ['/registry/configmaps/default/early']);
  });

  it('a TopologyConfig reaches the middleware through the Secret and routes new keys to its backend', async () => {
    fake.create(tcObject('shop', 'shirts', 10, [rule('shirts', { customresource: { group: 'stable.example.com', kind: 'shirts' } })]));
    await fake.until('shop/shirts Active', () => statusOf(fake, 'shop', 'shirts')?.deployStatus === 'Active');
    await syncSecret();
    await waitUntil('the middleware to apply one rule', async () => ((await metricValue(middleware, 'harikube_topology_rules')) === 1 ? true : undefined));

    await client.put({ key: b('/registry/stable.example.com/shirts/shop/red'), value: b('red') });
    await client.put({ key: b('/registry/configmaps/shop/c'), value: b('c') });
    assert.deepEqual(keysIn(file('shirts')), ['/registry/stable.example.com/shirts/shop/red']);
    assert.ok(!keysIn(file('default')).includes('/registry/stable.example.com/shirts/shop/red'));
    // clients still see one keyspace
    const all = await client.range({ key: b('/registry/'), range_end: b('/registry0') });
    assert.deepEqual(
      all.kvs.map((kv) => kv.key.toString()),
      ['/registry/configmaps/default/early', '/registry/configmaps/shop/c', SECRET_KEY, '/registry/stable.example.com/shirts/shop/red'],
    );
  });

  it('a second team and a JSON-stored Secret: rules from both resources apply in position order', async () => {
    fake.create(tcObject('infra', 'kube-system', 5, [rule('kube-system', { namespace: { namespace: 'kube-system' } })]));
    await fake.until('infra/kube-system Active', () => statusOf(fake, 'infra', 'kube-system')?.deployStatus === 'Active');
    await syncSecret(true);
    await waitUntil('the middleware to apply two rules', async () => ((await metricValue(middleware, 'harikube_topology_rules')) === 2 ? true : undefined));
    await client.put({ key: b('/registry/pods/kube-system/coredns'), value: b('p') });
    await client.put({ key: b('/registry/stable.example.com/shirts/kube-system/blue'), value: b('b') });
    assert.deepEqual(keysIn(file('kube-system')), ['/registry/pods/kube-system/coredns']);
    assert.deepEqual(keysIn(file('shirts')), ['/registry/stable.example.com/shirts/kube-system/blue', '/registry/stable.example.com/shirts/shop/red']);
  });

  it('a change that would strand existing keys is refused and routing stays', async () => {
    fake.create(tcObject('team-c', 'configmaps', 20, [rule('configmaps', { prefix: { prefix: 'configmaps/' } })]));
    await fake.until('team-c/configmaps Active', () => statusOf(fake, 'team-c', 'configmaps')?.deployStatus === 'Active');
    await syncSecret();
    await waitUntil('the refusal', async () => ((await metricValue(middleware, 'harikube_topology_last_apply_failed')) === 1 ? true : undefined));
    assert.match(middleware.process!.tail(), /would move existing keys/);
    assert.equal(await metricValue(middleware, 'harikube_topology_rules'), 2);
    await client.put({ key: b('/registry/configmaps/shop/d'), value: b('d') });
    assert.ok(keysIn(file('default')).includes('/registry/configmaps/shop/d'));
  });

  it('after a restart the routing in effect is the same', async () => {
    await middleware.stop();
    await middleware.restart();
    await client.put({ key: b('/registry/stable.example.com/shirts/shop/green'), value: b('g') });
    assert.ok(keysIn(file('shirts')).includes('/registry/stable.example.com/shirts/shop/green'));
    const got = await client.range({ key: b('/registry/pods/kube-system/coredns') });
    assert.equal(got.kvs[0]!.value.toString(), 'p');
  });
});

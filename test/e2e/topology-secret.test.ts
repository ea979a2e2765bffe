/**
 * Issue 3 end to end: the operator merges TopologyConfigs into the topology Secret; that Secret, stored the
 * way kube-apiserver stores it (protobuf under /registry/secrets/<ns>/<name>) in the real middleware
 * process, is picked up live by `secret://` and new keys land in the backends it declares. A refused change
 * (a database it cannot open) leaves routing as it was, and the routing survives a restart.
 *
 * Issue 16: Ready means routed. The middleware writes its apply report (a ConfigMap, JSON) into its own store;
 * the test carries it to the fake API server as kube-apiserver would serve it, and the operator reports a
 * TopologyConfig Active only once the middleware applied its rules, Failed with the middleware's reason when
 * it refused them (and then writes the Secret again without them, so other teams' changes still go live).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeStoredSecret, encodeStoredSecretJson, type SecretToStore } from '../support/stored-secret.js';
import type { BackendRule } from '../../middleware/src/topology/schema.js';
import { startOperator, statusOf, tcObject } from '../operator/harness.js';
import { b } from '../support/bytes.js';
import { FakeKube } from '../support/fake-kube.js';
import { EtcdClient } from '../support/grpc.js';
import { Middleware } from '../support/middleware.js';
import { waitUntil } from '../support/wait.js';
import { metricValue } from '../support/metrics.js';
import { keysIn } from '../support/routed.js';
import { parseReport, REPORT_FOR_LABEL } from '../../middleware/src/topology/apply-report.js';

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

  /** Serves the middleware's apply reports through the fake API server, as kube-apiserver serves its store. */
  async function syncReports(): Promise<Record<string, any>[]> {
    const got = await client.range({ key: b('/registry/configmaps/harikube/'), range_end: b('/registry/configmaps/harikube0') });
    const out: Record<string, any>[] = [];
    for (const kv of got.kvs) {
      const obj = JSON.parse(kv.value.toString('utf8'));
      if (!obj.metadata.labels?.[REPORT_FOR_LABEL]) continue;
      out.push(obj);
      const existing = fake.get('configmaps', 'harikube', obj.metadata.name);
      if (!existing) fake.create({ ...obj, metadata: { ...obj.metadata, uid: undefined, creationTimestamp: undefined } });
      else if (JSON.stringify(existing.data) !== JSON.stringify(obj.data)) fake.update({ ...existing, data: obj.data });
    }
    return out;
  }

  /** The middleware has reported on the Secret's current documents (applied or refused). */
  async function reported(state: 'Applied' | 'Refused'): Promise<Record<string, any>> {
    return waitUntil(`the middleware to report ${state}`, async () => {
      const [cm] = await syncReports();
      const r = parseReport(cm);
      return r?.state === state && (state === 'Applied' ? r.applied : r.refused)!.revision >= 0 ? cm : undefined;
    });
  }

  before(async () => {
    fake = await FakeKube.start();
    operator = startOperator(fake, { waitForMiddleware: true });
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

  it('a TopologyConfig reaches the middleware through the Secret and routes new keys to its backend; Active once applied', async () => {
    fake.create(tcObject('shop', 'shirts', 10, [rule('shirts', { customresource: { group: 'stable.example.com', kind: 'shirts' } })]));
    const pending = await fake.until('shop/shirts Pending', () => {
      const s = statusOf(fake, 'shop', 'shirts');
      return s?.deployStatus === 'Pending' ? s : undefined;
    });
    assert.match(pending.deployStatusReason, /no middleware has reported applying it yet/);
    assert.equal(pending.conditions.find((c: any) => c.type === 'Ready').status, 'Unknown');
    await syncSecret();
    await waitUntil('the middleware to apply one rule', async () => ((await metricValue(middleware, 'harikube_topology_rules')) === 1 ? true : undefined));
    const report = await reported('Applied');
    // what the API server needs to serve a stored object, and where kubectl finds it
    assert.equal(report.apiVersion, 'v1');
    assert.equal(report.kind, 'ConfigMap');
    assert.equal(report.metadata.namespace, 'harikube');
    assert.match(report.metadata.uid, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.match(report.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(report.metadata.resourceVersion, undefined, 'resourceVersion comes from the key\'s mod revision');
    assert.equal(report.metadata.labels[REPORT_FOR_LABEL], 'topology-config');
    const active = await fake.until('shop/shirts Active', () => {
      const s = statusOf(fake, 'shop', 'shirts');
      return s?.deployStatus === 'Active' ? s : undefined;
    });
    assert.match(active.deployStatusReason, /rules applied by middleware \d+ from Secret harikube\/topology-config/);

    await client.put({ key: b('/registry/stable.example.com/shirts/shop/red'), value: b('red') });
    await client.put({ key: b('/registry/configmaps/shop/c'), value: b('c') });
    assert.deepEqual(keysIn(file('shirts')), ['/registry/stable.example.com/shirts/shop/red']);
    assert.ok(!keysIn(file('default')).includes('/registry/stable.example.com/shirts/shop/red'));
    // clients still see one keyspace
    const all = await client.range({ key: b('/registry/'), range_end: b('/registry0') });
    assert.deepEqual(
      all.kvs.map((kv) => kv.key.toString()),
      [
        '/registry/configmaps/default/early',
        `/registry/configmaps/harikube/${report.metadata.name}`, // the apply report lives in the store like any ConfigMap
        '/registry/configmaps/shop/c',
        SECRET_KEY,
        '/registry/stable.example.com/shirts/shop/red',
      ],
    );
  });

  it('a second team and a JSON-stored Secret: rules from both resources apply in position order', async () => {
    fake.create(tcObject('infra', 'kube-system', 5, [rule('kube-system', { namespace: { namespace: 'kube-system' } })]));
    await syncSecret(true);
    await waitUntil('the middleware to apply two rules', async () => ((await metricValue(middleware, 'harikube_topology_rules')) === 2 ? true : undefined));
    await waitUntil('both Active', async () => {
      await syncReports();
      return ['infra/kube-system', 'shop/shirts'].every((k) => statusOf(fake, k.split('/')[0]!, k.split('/')[1]!)?.deployStatus === 'Active') || undefined;
    });
    await client.put({ key: b('/registry/pods/kube-system/coredns'), value: b('p') });
    await client.put({ key: b('/registry/stable.example.com/shirts/kube-system/blue'), value: b('b') });
    assert.deepEqual(keysIn(file('kube-system')), ['/registry/pods/kube-system/coredns']);
    assert.deepEqual(keysIn(file('shirts')), ['/registry/stable.example.com/shirts/kube-system/blue', '/registry/stable.example.com/shirts/shop/red']);
  });

  it('a change the middleware cannot apply (a database it cannot open) is refused: Failed with the middleware\'s reason, routing stays, others still go live', async () => {
    fake.create(tcObject('team-c', 'configmaps', 20, [rule('configmaps', { endpoint: 'sqlite:///dev/null/configmaps.db', prefix: { prefix: 'configmaps/' } } as Partial<BackendRule>)]));
    await syncSecret();
    await waitUntil('the refusal', async () => ((await metricValue(middleware, 'harikube_topology_last_apply_failed')) === 1 ? true : undefined));
    assert.match(middleware.process!.tail(), /cannot open SQLite database \/dev\/null\/configmaps\.db/);
    assert.equal(await metricValue(middleware, 'harikube_topology_rules'), 2);
    await reported('Refused');
    const failed = await fake.until('team-c/configmaps Failed', () => {
      const s = statusOf(fake, 'team-c', 'configmaps');
      return s?.deployStatus === 'Failed' ? s : undefined;
    });
    assert.match(failed.deployStatusReason, /^middleware \d+ refused these rules: .*rule "configmaps" .*cannot open SQLite database/s);
    assert.equal(failed.conditions.find((c: any) => c.type === 'Ready').reason, 'RefusedByMiddleware');
    assert.equal(statusOf(fake, 'shop', 'shirts')!.deployStatus, 'Active', 'rules already applied stay Active');
    await client.put({ key: b('/registry/configmaps/shop/d'), value: b('d') });
    assert.ok(keysIn(file('default')).includes('/registry/configmaps/shop/d'));

    // The operator writes the Secret again without the refused rules, so another team's new rules still go live.
    fake.create(tcObject('team-d', 'secrets', 30, [rule('secrets', { prefix: { prefix: 'secrets/team-d/' } })]));
    await fake.until('Secret without configmaps, with secrets', () => {
      const s = fake.get('secrets', 'harikube', 'topology-config');
      const keys = Object.keys(s?.data ?? {});
      return keys.some((k) => k.includes('team-d.secrets')) && !keys.some((k) => k.includes('team-c.configmaps'));
    });
    await syncSecret();
    await waitUntil('the middleware to apply three rules', async () => ((await metricValue(middleware, 'harikube_topology_rules')) === 3 ? true : undefined));
    await waitUntil('team-d Active', async () => {
      await syncReports();
      return statusOf(fake, 'team-d', 'secrets')?.deployStatus === 'Active' || undefined;
    });
    assert.equal(statusOf(fake, 'team-c', 'configmaps')!.deployStatus, 'Failed', 'refused rules stay out until their spec changes');
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

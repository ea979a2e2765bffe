/**
 * Operator parity: liveness that can fail (a lost API connection, a stuck reconcile) and /metrics behind
 * TokenReview + SubjectAccessReview, as controller-runtime operators ship it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeKube } from '../support/fake-kube.js';
import { freePort } from '../support/env.js';
import { waitUntil } from '../support/wait.js';
import { logger } from '../../middleware/src/log.js';
import { startHttpServer } from '../../middleware/src/operator/http.js';
import { metricsAuthorizer } from '../../middleware/src/operator/metrics-auth.js';
import type { KubeClient } from '../../middleware/src/operator/kube-client.js';
import { rule, startOperator, tcObject } from './harness.js';

test('/healthz fails while the API server is unreachable for longer than apiLostMs, and recovers with it', async (t) => {
  const fake = await FakeKube.start();
  const operator = startOperator(fake, { apiLostMs: 300, secretNamespaces: ['harikube'] });
  t.after(async () => {
    await operator.stop();
    await fake.stop();
  });
  await operator.waitForSync();
  assert.equal(operator.health().ok, true);
  await fake.restart({
    whileDown: async () => {
      await new Promise((r) => setTimeout(r, 1200));
      const h = operator.health();
      assert.equal(h.ok, false);
      assert.match((h.detail.problems as string[]).join('\n'), /topologyconfigs: no answer from the API server for \ds/);
    },
  });
  await waitUntil('healthy again', async () => operator.health().ok || undefined, { timeoutMs: 5000 });
});

test('/healthz fails while one reconcile is stuck longer than stuckReconcileMs', async (t) => {
  const fake = await FakeKube.start();
  const operator = startOperator(fake, { stuckReconcileMs: 300 });
  t.after(async () => {
    fake.fault = undefined;
    await operator.stop();
    await fake.stop();
  });
  await operator.waitForSync();
  let hung = false;
  // the reconcile's write of the topology Secret never gets an answer (the client gives up after 5 s)
  fake.fault = (req) => (req.method === 'POST' && req.path.endsWith('/secrets') ? ((hung = true), 'hang') : undefined);
  fake.create(tcObject('team-a', 'app', 1, [rule('pods')]));
  const deadline = Date.now() + 4000;
  let problems: string[] = [];
  while (Date.now() < deadline) {
    const h = operator.health();
    problems = h.detail.problems as string[];
    if (!h.ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(hung, 'the reconcile reached the hanging request');
  assert.match(problems.join('\n'), /a reconcile has been running for \d+s \(limit 0.3s\)/);
  fake.fault = undefined;
  await waitUntil('healthy once the reconcile ends', async () => operator.health().ok || undefined, { timeoutMs: 15_000 });
});

test('/metrics with --metrics-auth: 401 without or with a bad token, 403 without metrics-reader, 200 with it', async (t) => {
  const calls: string[] = [];
  const client = {
    async request(method: string, path: string, opts: { body?: any }) {
      calls.push(`${method} ${path}`);
      if (path.endsWith('/tokenreviews')) {
        const token = opts.body.spec.token;
        if (token === 'reader-token') return { status: { authenticated: true, user: { username: 'system:serviceaccount:monitoring:prometheus', groups: ['system:serviceaccounts'] } } };
        if (token === 'other-token') return { status: { authenticated: true, user: { username: 'alice' } } };
        return { status: { authenticated: false } };
      }
      if (path.endsWith('/subjectaccessreviews')) {
        const spec = opts.body.spec;
        assert.deepEqual(spec.nonResourceAttributes, { path: '/metrics', verb: 'get' });
        return { status: { allowed: spec.user === 'system:serviceaccount:monitoring:prometheus' } };
      }
      throw new Error(`unexpected ${path}`);
    },
  } as unknown as KubeClient;
  const server = await startHttpServer({ host: '127.0.0.1', port: await freePort() }, { metrics: true, authorize: metricsAuthorizer(client, logger) });
  t.after(() => server.close());
  const get = async (token?: string) => {
    const r = await fetch(`http://127.0.0.1:${server.port}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    return { status: r.status, text: await r.text() };
  };
  assert.equal((await get()).status, 401);
  assert.equal((await get('forged')).status, 401);
  const forbidden = await get('other-token');
  assert.equal(forbidden.status, 403);
  assert.match(forbidden.text, /user "alice" may not get \/metrics \(bind the metrics-reader ClusterRole\)/);
  const ok = await get('reader-token');
  assert.equal(ok.status, 200);
  assert.match(ok.text, /process_cpu_seconds_total/);
  const reviews = calls.length;
  assert.equal((await get('reader-token')).status, 200);
  assert.equal(calls.length, reviews, 'a repeated scrape is answered from the review cache');
});

/**
 * Ready means routed, end to end with a real kube-apiserver on the real middleware: the operator (in process,
 * against the real API server) writes the topology Secret through the API; the middleware reads it from its
 * own store (`secret://`), applies it and writes its apply report into its store; kube-apiserver serves that
 * JSON-stored ConfigMap; the operator turns the TopologyConfig Active only then, and objects created afterwards
 * land in the rule's database. A change the middleware refuses turns Failed with its reason. A rule that routes
 * existing ConfigMaps elsewhere is Migrating while the middleware moves them (held in progress by
 * --migration-rate 1 after a first batch), then Active once they are in the new database.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { logger } from '../../middleware/src/log.js';
import { TopologyConfigController } from '../../middleware/src/operator/controller.js';
import { kubeClient } from '../../middleware/src/operator/kube-client.js';
import { topologyConfigCrd } from '../../middleware/src/topology/crd.js';
import { parseReport, REPORT_FOR_LABEL } from '../../middleware/src/topology/apply-report.js';
import { KubeStack, kubeTargetSkip, storedKeys } from '../support/kube-stack.js';
import { keysIn } from '../support/routed.js';
import { waitUntil } from '../support/wait.js';

const skip = await kubeTargetSkip('sqlite');

describe('Ready means routed, with a real kube-apiserver', { skip }, () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hk-ready-kube-'));
  const db = (name: string) => path.join(dir, `${name}.db`);
  let stack: KubeStack;
  let operator: TopologyConfigController;

  const tc = (namespace: string, name: string, position: number, rule: Record<string, unknown>) =>
    stringify({
      apiVersion: 'harikube.info/v1',
      kind: 'TopologyConfig',
      metadata: { name, namespace },
      spec: { position, targetSecret: 'harikube/topology-config', backends: [{ name, endpoint: `sqlite://${db(name)}`, ...rule }] },
    });
  const statusOf = async (namespace: string, name: string) => {
    const { stdout } = await stack.api.kubectl(['-n', namespace, 'get', 'topologyconfig', name, '-o', 'json']);
    return JSON.parse(stdout).status ?? {};
  };
  const waitStatus = (namespace: string, name: string, want: string) =>
    waitUntil(`${namespace}/${name} ${want}`, async () => {
      const s = await statusOf(namespace, name);
      return s.deployStatus === want ? s : undefined;
    }, { timeoutMs: 60_000, intervalMs: 300 });

  before(async () => {
    stack = await KubeStack.start('sqlite', { middlewareArgs: ['--topology-config', 'secret://harikube/topology-config', '--migration-rate', '1'] });
    await stack.api.kubectl(['apply', '-f', '-'], { input: stringify(topologyConfigCrd()) });
    await stack.api.kubectl(['wait', '--for=condition=Established', 'crd/topologyconfigs.harikube.info', '--timeout=60s']);
    for (const ns of ['harikube', 'team-a', 'team-b', 'team-c']) await stack.api.kubectl(['create', 'namespace', ns]);
    operator = new TopologyConfigController({
      client: kubeClient(stack.api.kubeConfig(), { userAgent: 'harikube-operator/e2e', requestTimeoutMs: 10_000 }),
      log: logger.child({ test: 'ready-kube' }),
      identity: 'e2e',
      leaderElection: false,
      secretNamespaces: ['harikube'],
      retryBackoffMs: { base: 100, max: 2000 },
      informerBackoffMs: { base: 100, max: 2000 },
    });
    operator.start();
  });

  after(async () => {
    await operator?.stop();
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a TopologyConfig is Active once the middleware reports it applied the Secret, served by kube-apiserver', async () => {
    await stack.api.kubectl(['apply', '-f', '-'], { input: tc('team-a', 'team-a', 10, { namespace: { namespace: 'team-a' } }) });
    const active = await waitStatus('team-a', 'team-a', 'Active');
    assert.match(active.deployStatusReason, /rules applied by middleware \d+ from Secret harikube\/topology-config/);
    // the report, JSON in the middleware's store, is an ordinary ConfigMap to the API server and kubectl
    const { stdout } = await stack.api.kubectl(['-n', 'harikube', 'get', 'configmaps', '-l', REPORT_FOR_LABEL, '-o', 'json']);
    const items = JSON.parse(stdout).items;
    assert.equal(items.length, 1);
    assert.match(items[0].metadata.resourceVersion, /^\d+$/, 'resourceVersion from the key\'s mod revision');
    assert.equal(parseReport(items[0])!.state, 'Applied');
    // routed: a ConfigMap created now lands in team-a's database
    await stack.api.kubectl(['-n', 'team-a', 'create', 'configmap', 'after-ready', '--from-literal=k=v']);
    assert.ok(keysIn(db('team-a')).includes('/registry/configmaps/team-a/after-ready'));
  });

  it('a change the middleware refuses is Failed with its reason; Active resources stay Active', async () => {
    // a database the middleware cannot open (a path under a file)
    await stack.api.kubectl(['apply', '-f', '-'], { input: tc('team-b', 'team-b', 20, { endpoint: 'sqlite:///dev/null/team-b.db', prefix: { prefix: 'configmaps/team-b/' } }) });
    const failed = await waitStatus('team-b', 'team-b', 'Failed');
    assert.match(failed.deployStatusReason, /^middleware \d+ refused these rules: .*rule "team-b" .*cannot open SQLite database/s);
    assert.equal(failed.conditions.find((c: any) => c.type === 'Ready').reason, 'RefusedByMiddleware');
    assert.equal((await statusOf('team-a', 'team-a')).deployStatus, 'Active');
    // its rules left the Secret again, and the middleware applied that
    await waitUntil('the report applied again', async () => {
      const { stdout } = await stack.api.kubectl(['-n', 'harikube', 'get', 'configmaps', '-l', REPORT_FOR_LABEL, '-o', 'json']);
      return parseReport(JSON.parse(stdout).items[0])?.state === 'Applied' || undefined;
    }, { timeoutMs: 60_000, intervalMs: 300 });
  });

  it('a rule that moves existing ConfigMaps is Migrating with progress while they move, then Active; the data is in its database', async () => {
    // more ConfigMaps than the mover moves in one batch, so --migration-rate 1 holds the migration mid-way
    const names = Array.from({ length: 1050 }, (_, i) => `cm${String(i).padStart(4, '0')}`);
    const list = { apiVersion: 'v1', kind: 'List', items: names.map((name) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'team-c' }, data: { k: name } })) };
    await stack.api.kubectl(['create', '-f', '-'], { input: JSON.stringify(list), timeoutMs: 300_000 });
    const keys = names.map((n) => `/registry/configmaps/team-c/${n}`);
    // the namespace's Events (the operator's, about team-c) go to its database too
    const configMapsIn = (file: string) => keysIn(file).filter((k) => k.startsWith('/registry/configmaps/'));
    assert.deepEqual((await storedKeys(stack.stores[0]!.endpoint)).filter((k) => k.startsWith('/registry/configmaps/team-c/')), keys);

    await stack.api.kubectl(['apply', '-f', '-'], { input: tc('team-c', 'team-c', 30, { namespace: { namespace: 'team-c' } }) });
    const migrating = await waitUntil('team-c Migrating with counted progress', async () => {
      const s = await statusOf('team-c', 'team-c');
      return s.deployStatus === 'Migrating' && /into rule "team-c"/.test(s.deployStatusReason) ? s : undefined;
    }, { timeoutMs: 60_000, intervalMs: 300 });
    assert.match(migrating.deployStatusReason, /^rules in effect; middleware \d+ is moving the keys stored before: \d+ of 1050 keys moved out of the default backend into rule "team-c" \(moving/);
    const ready = migrating.conditions.find((c: any) => c.type === 'Ready');
    assert.deepEqual([ready.status, ready.reason], ['False', 'Migrating']);
    assert.equal((await statusOf('team-a', 'team-a')).deployStatus, 'Active', 'a resource whose keys do not move stays Active');
    // mid-way the API serves every ConfigMap, wherever it is now, and a new one lands in the new database
    const { stdout } = await stack.api.kubectl(['-n', 'team-c', 'get', 'configmaps', '-o', 'name']);
    assert.equal(stdout.trim().split('\n').length, names.length);
    await stack.api.kubectl(['-n', 'team-c', 'create', 'configmap', 'during', '--from-literal=k=v']);
    assert.ok(keysIn(db('team-c')).includes('/registry/configmaps/team-c/during'));
    assert.ok(configMapsIn(db('team-c')).length < names.length, 'the rate limit holds the migration mid-way');

    // the limit lifted (a restart with another --migration-rate): the migration resumes from its durable state and ends
    const args = stack.middleware.options.extraArgs!;
    args[args.indexOf('--migration-rate') + 1] = '0';
    await stack.middleware.stop();
    await stack.middleware.restart();
    const active = await waitStatus('team-c', 'team-c', 'Active');
    assert.match(active.deployStatusReason, /rules applied by middleware \d+ from Secret harikube\/topology-config/);
    assert.deepEqual(configMapsIn(db('team-c')), [...keys, '/registry/configmaps/team-c/during'].sort());
    assert.deepEqual((await storedKeys(stack.stores[0]!.endpoint)).filter((k) => k.startsWith('/registry/configmaps/team-c/')), []);
    const { stdout: after } = await stack.api.kubectl(['-n', 'team-c', 'get', 'configmap', 'cm0000', '-o', 'jsonpath={.data.k}']);
    assert.equal(after, 'cm0000');
  });
});

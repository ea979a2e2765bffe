/**
 * Issue 15, "Never down": a topology that cannot be applied never stops a middleware that has a topology in
 * effect, whatever its source. The real middleware process runs with topology A (a rule to a second SQLite
 * database), writes keys, and is started again with a topology that is refused by the applier, invalid,
 * points at a database that cannot be opened, or cannot be read at all (file:// and http://): every time it
 * starts, is ready, serves the keys, routes new keys as A, logs the reason and counts it in its metrics.
 * A database that comes up later is applied without anyone touching the topology. Only a first start (empty
 * store, nothing saved) with an unusable topology fails, naming the reason. At hot reload a bad file or URL
 * keeps the topology in effect.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { b } from '../support/bytes.js';
import { freePort } from '../support/env.js';
import { EtcdClient } from '../support/grpc.js';
import { Middleware, REPO_ROOT } from '../support/middleware.js';
import { CLI_ARGS } from '../support/cli.js';
import { metricSample, metricValue } from '../support/metrics.js';
import { keysIn } from '../support/routed.js';
import { waitUntil } from '../support/wait.js';

const run = promisify(execFile);

const LEASE = '/registry/leases/kube-node-lease/n1';
const CONFIGMAP = '/registry/configmaps/default/c1';

/** `harikube serve` expected to exit: its code and stderr. */
async function serveUntilExit(args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    await run(process.execPath, [...CLI_ARGS, 'serve', '--metrics-bind-address', '0', '--listen-address', `127.0.0.1:${await freePort()}`, ...args], {
      cwd: REPO_ROOT,
      timeout: 60_000,
    });
    return { code: 0, stderr: '' };
  } catch (err) {
    const e = err as { code?: number; stderr?: string };
    return { code: e.code ?? -1, stderr: e.stderr ?? '' };
  }
}

/** A directory of SQLite databases: the default backend and the databases of rules. */
function scratch(prefix: string) {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  const db = (name: string) => path.join(dir, `${name}.db`);
  const topologyA = { backends: [{ name: 'leases', endpoint: `sqlite://${db('leases')}`, prefix: { prefix: 'leases/' } }] };
  return { dir, db, topologyA, endpoint: `sqlite://${db('default')}` };
}

/**
 * What "serves with the topology in effect" means, checked on a running middleware: ready, the keys written
 * under A readable, one rule in effect, the failure counted and logged, and new keys routed as A.
 */
async function assertServesAsA(
  m: Middleware,
  db: (name: string) => string,
  expect: { result: 'refused' | 'unusable'; reason: RegExp; tag: string },
): Promise<void> {
  const readyz = await fetch(`http://${m.metricsAddress}/readyz`);
  assert.equal(readyz.status, 200, 'ready');
  const client = new EtcdClient(m.address);
  try {
    for (const [key, value] of [[LEASE, 'l1'], [CONFIGMAP, 'c1']]) {
      const got = await client.range({ key: b(key!) });
      assert.equal(got.kvs[0]?.value.toString(), value, `${key} served`);
    }
    assert.equal(await metricValue(m, 'harikube_topology_rules'), 1, 'topology A (one rule) in effect');
    assert.equal(await metricValue(m, 'harikube_topology_last_apply_failed'), 1, 'the refusal is exported');
    assert.ok((await metricSample(m, 'harikube_topology_applies_total', { result: expect.result }))! >= 1, `applies_total{result="${expect.result}"} counted`);
    const log = m.process!.tail();
    assert.match(log, /topology not applied at start; serving with the topology in effect/);
    assert.match(log, expect.reason);
    // routes as A: a new lease goes to the rule's database, anything else to the default backend
    await client.put({ key: b(`/registry/leases/kube-node-lease/${expect.tag}`), value: b('l') });
    await client.put({ key: b(`/registry/configmaps/default/${expect.tag}`), value: b('c') });
    assert.ok(keysIn(db('leases')).includes(`/registry/leases/kube-node-lease/${expect.tag}`));
    assert.ok(keysIn(db('default')).includes(`/registry/configmaps/default/${expect.tag}`));
    assert.ok(!keysIn(db('default')).includes(`/registry/leases/kube-node-lease/${expect.tag}`));
  } finally {
    client.close();
  }
}

describe('never down with a file:// topology', () => {
  const { dir, db, topologyA, endpoint } = scratch('hk-neverdown-file-');
  const fileOf = (name: string) => path.join(dir, `${name}.yaml`);
  let running: Middleware | undefined;

  /** Writes `name.yaml` atomically (editors and Kubernetes volumes replace the file). */
  function write(name: string, text: string): string {
    const file = fileOf(name);
    writeFileSync(`${file}.tmp`, text);
    renameSync(`${file}.tmp`, file);
    return file;
  }

  async function startWith(file: string): Promise<Middleware> {
    await running?.stop();
    running = await Middleware.start({ endpoint, extraArgs: ['--topology-config', `file://${file}`] });
    return running;
  }

  before(async () => {
    const m = await startWith(write('a', stringify(topologyA)));
    const client = new EtcdClient(m.address);
    await client.put({ key: b(LEASE), value: b('l1') });
    await client.put({ key: b(CONFIGMAP), value: b('c1') });
    client.close();
    assert.deepEqual(keysIn(db('leases')), [LEASE]);
    await m.stop();
  });

  after(async () => {
    await running?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a topology the applier refuses (a rule on the default backend\'s database): starts and serves as A', async () => {
    const refused = { backends: [...topologyA.backends, { name: 'pods', endpoint, prefix: { prefix: 'pods/' } }] };
    const m = await startWith(write('refused', stringify(refused)));
    await assertServesAsA(m, db, { result: 'refused', reason: /is the same database as the default backend/, tag: 'refused' });
  });

  it('an invalid document: starts and serves as A, naming the rule and field', async () => {
    const m = await startWith(write('invalid', 'backends:\n- name: leases\n  endpoint: sqlite://x.db\n  prefix: { prefix: leases/ }\n  bogus: 1\n'));
    await assertServesAsA(m, db, { result: 'unusable', reason: /backends\[0\] \(name \\?"leases\\?"\)/, tag: 'invalid' });
  });

  it('a database that cannot be reached: starts and serves as A, naming the rule without its password', async () => {
    const port = await freePort(); // nothing listens there
    const unreachable = { backends: [...topologyA.backends, { name: 'pods', endpoint: `postgres://u:hunter2@127.0.0.1:${port}/x`, prefix: { prefix: 'pods/' } }] };
    const m = await startWith(write('unreachable', stringify(unreachable)));
    await assertServesAsA(m, db, { result: 'refused', reason: new RegExp(`rule \\\\?"pods\\\\?" \\(postgres://u:\\*\\*\\*@127\\.0\\.0\\.1:${port}/x\\)`), tag: 'unreachable' });
    assert.doesNotMatch(m.process!.tail(), /hunter2/);
  });

  it('a file that does not exist: starts and serves as A', async () => {
    const m = await startWith(fileOf('missing'));
    await assertServesAsA(m, db, { result: 'unusable', reason: /the file does not exist/, tag: 'missing' });
  });

  it('a database that comes up later is applied without a change to the topology', async () => {
    // "events" lives under a path a file blocks: SQLite cannot create it, as a volume that is not mounted yet
    const blocker = path.join(dir, 'not-yet');
    writeFileSync(blocker, 'a file where the directory of the database will be');
    const eventsDb = path.join(blocker, 'events.db');
    const later = { backends: [...topologyA.backends, { name: 'events', endpoint: `sqlite://${eventsDb}`, prefix: { prefix: 'events/' } }] };
    const m = await startWith(write('later', stringify(later)));
    await assertServesAsA(m, db, { result: 'refused', reason: /rule \\?"events\\?"/, tag: 'later' });
    assert.match(m.process!.tail(), /topology will be read and applied again/);

    rmSync(blocker);
    mkdirSync(blocker);
    await waitUntil('the retried topology to apply', async () => ((await metricValue(m, 'harikube_topology_rules')) === 2 ? true : undefined), { timeoutMs: 60_000 });
    assert.equal(await metricValue(m, 'harikube_topology_last_apply_failed'), 0);
    assert.ok((await metricValue(m, 'harikube_topology_apply_retries_total'))! >= 1);
    const client = new EtcdClient(m.address);
    await client.put({ key: b('/registry/events/default/e1'), value: b('e') });
    client.close();
    assert.deepEqual(keysIn(eventsDb), ['/registry/events/default/e1']);
  });

  it('at hot reload a refused, an invalid and a deleted file keep the topology in effect', async () => {
    // the middleware of the previous test runs with file "later" (two rules in effect)
    const m = running!;
    const client = new EtcdClient(m.address);
    try {
      const failures = async () => (await metricSample(m, 'harikube_topology_applies_total', { result: 'refused' }))! + ((await metricSample(m, 'harikube_topology_applies_total', { result: 'unusable' })) ?? 0);
      const steps: [string, () => void][] = [
        ['refused', () => write('later', stringify({ backends: [{ name: 'pods', endpoint, prefix: { prefix: 'pods/' } }] }))],
        ['invalid', () => write('later', 'backends: 7\n')],
        ['deleted', () => rmSync(fileOf('later'))],
      ];
      for (const [what, change] of steps) {
        const before = await failures();
        change();
        await waitUntil(`the ${what} file to be reported`, async () => ((await failures()) > before ? true : undefined), { timeoutMs: 30_000 });
        assert.equal(await metricValue(m, 'harikube_topology_last_apply_failed'), 1);
        assert.equal(await metricValue(m, 'harikube_topology_rules'), 2, `${what}: the topology in effect stays`);
        assert.equal((await fetch(`http://${m.metricsAddress}/readyz`)).status, 200, `${what}: still ready`);
        await client.put({ key: b(`/registry/events/default/${what}`), value: b('e') });
        assert.equal((await client.range({ key: b(LEASE) })).kvs[0]?.value.toString(), 'l1');
      }
      assert.deepEqual(keysIn(path.join(dir, 'not-yet', 'events.db')), ['/registry/events/default/deleted', '/registry/events/default/e1', '/registry/events/default/invalid', '/registry/events/default/refused']);
      assert.match(m.process!.tail(), /topology not applied; the topology in effect stays/);
    } finally {
      client.close();
    }
  });
});

describe('never down with an http:// topology', () => {
  const { dir, db, topologyA, endpoint } = scratch('hk-neverdown-http-');
  /** What the topology server answers next. */
  let answer: { status: number; body: string } = { status: 200, body: stringify(topologyA) };
  let server: http.Server;
  let port: number;
  let running: Middleware | undefined;

  async function listen(): Promise<void> {
    server = http.createServer((_req, res) => {
      res.writeHead(answer.status, { 'content-type': 'application/yaml' });
      res.end(answer.body);
    });
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  }

  const url = () => `http://127.0.0.1:${port}/topology.yaml`;

  async function startWithUrl(): Promise<Middleware> {
    await running?.stop();
    running = await Middleware.start({ endpoint, extraArgs: ['--topology-config', url(), '--topology-poll-interval', '200ms'] });
    return running;
  }

  before(async () => {
    port = await freePort();
  });

  after(async () => {
    await running?.stop();
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server?.listening ? server.close(() => resolve()) : resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('a first start with an unreachable URL fails, naming the URL and why', async () => {
    const r = await serveUntilExit(['--endpoint', endpoint, '--topology-config', url()]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`topology source http://127\\.0\\.0\\.1:${port}/topology\\.yaml: request failed`));
    assert.match(r.stderr, /first start \(no topology saved, an empty store\)/);
  });

  it('with topology A from the URL it routes and saves A', async () => {
    await listen();
    const m = await startWithUrl();
    const client = new EtcdClient(m.address);
    await client.put({ key: b(LEASE), value: b('l1') });
    await client.put({ key: b(CONFIGMAP), value: b('c1') });
    client.close();
    assert.deepEqual(keysIn(db('leases')), [LEASE]);
  });

  it('at hot reload an invalid, a refused and a failing answer keep A', async () => {
    const m = running!;
    const client = new EtcdClient(m.address);
    try {
      const steps: [string, 'refused' | 'unusable', { status: number; body: string }][] = [
        ['invalid', 'unusable', { status: 200, body: 'backends:\n- name: leases\n' }],
        ['refused', 'refused', { status: 200, body: stringify({ backends: [...topologyA.backends, { name: 'pods', endpoint, prefix: { prefix: 'pods/' } }] }) }],
        ['http-500', 'unusable', { status: 500, body: 'oops' }],
      ];
      for (const [what, result, next] of steps) {
        const before = (await metricSample(m, 'harikube_topology_applies_total', { result })) ?? 0;
        answer = next;
        await waitUntil(`the ${what} answer to be reported`, async () => (((await metricSample(m, 'harikube_topology_applies_total', { result })) ?? 0) > before ? true : undefined), { timeoutMs: 30_000 });
        assert.equal(await metricValue(m, 'harikube_topology_rules'), 1, `${what}: A stays`);
        assert.equal((await fetch(`http://${m.metricsAddress}/readyz`)).status, 200, `${what}: still ready`);
        await client.put({ key: b(`/registry/leases/kube-node-lease/${what}`), value: b('l') });
        assert.ok(keysIn(db('leases')).includes(`/registry/leases/kube-node-lease/${what}`));
      }
    } finally {
      client.close();
    }
  });

  it('restarted while the URL answers 500: starts and serves as A', async () => {
    answer = { status: 500, body: 'oops' };
    const m = await startWithUrl();
    await assertServesAsA(m, db, { result: 'unusable', reason: /HTTP 500/, tag: 'http500' });
  });

  it('restarted while nothing listens at the URL: starts and serves as A; applies the URL once it answers', async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const m = await startWithUrl();
    await assertServesAsA(m, db, { result: 'unusable', reason: /request failed/, tag: 'down' });
    answer = { status: 200, body: stringify({ backends: [...topologyA.backends, { name: 'events', endpoint: `sqlite://${db('events')}`, prefix: { prefix: 'events/' } }] }) };
    await listen();
    await waitUntil('the URL\'s topology to apply', async () => ((await metricValue(m, 'harikube_topology_rules')) === 2 ? true : undefined), { timeoutMs: 30_000 });
    assert.equal(await metricValue(m, 'harikube_topology_last_apply_failed'), 0);
  });
});

describe('a store that holds data but never had rules', () => {
  const { dir, db, endpoint } = scratch('hk-neverdown-norules-');
  let m: Middleware | undefined;

  after(async () => {
    await m?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is not a first start: an invalid topology leaves it serving with no rules, as at the last run', async () => {
    m = await Middleware.start({ endpoint });
    let client = new EtcdClient(m.address);
    await client.put({ key: b(CONFIGMAP), value: b('c1') });
    client.close();
    await m.stop();
    const file = path.join(dir, 'invalid.yaml');
    writeFileSync(file, 'backends: nope\n');
    m = await Middleware.start({ endpoint, extraArgs: ['--topology-config', `file://${file}`] });
    client = new EtcdClient(m.address);
    try {
      assert.equal((await client.range({ key: b(CONFIGMAP) })).kvs[0]?.value.toString(), 'c1');
      assert.equal(await metricValue(m, 'harikube_topology_last_apply_failed'), 1);
      assert.match(m.process!.tail(), /serving with the topology in effect.*no rules \(as at the last run\)/);
      await client.put({ key: b(LEASE), value: b('l') });
      assert.deepEqual(keysIn(db('default')), [CONFIGMAP, LEASE]);
    } finally {
      client.close();
    }
  });
});

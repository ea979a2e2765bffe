/**
 * Layers with real processes: the documentation's two-layer example (a top middleware sends namespace
 * kube-system to a second middleware, which spreads pods, secrets, configmaps and deployments over a real
 * etcd, MariaDB, PostgreSQL and SQLite), checked key by key in every database; kill -9 of the child layer
 * under writers and watchers; and a child that already serves one parent refused by another.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status as Status } from '@grpc/grpc-js';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { parseEndpoint, type SqlServerEndpoint } from '../../middleware/src/topology/endpoint.js';
import { assertAckedWritesKept, type AckedWrites } from '../support/acked-writes.js';
import { skipUnless } from '../support/env.js';
import { Etcd } from '../support/etcd.js';
import { etcdctl } from '../support/etcdctl.js';
import { EtcdClient } from '../support/grpc.js';
import { Middleware } from '../support/middleware.js';
import { keysIn } from '../support/routed.js';
import { createScratchStore, type ScratchStore } from '../support/scratch-store.js';
import { waitUntil } from '../support/wait.js';

const skip = await skipUnless('etcd', 'etcdctl', 'postgres', 'mysql');

const b = (s: string) => Buffer.from(s);
/** The etcd backend's own keys (its revision map and meta values: README "What is stored in an etcd backend"). */
const data = (keys: string[]) => keys.filter((k) => !k.startsWith('harikube/')).sort();

async function postgresKeys(endpoint: string): Promise<string[]> {
  const e = parseEndpoint(endpoint) as SqlServerEndpoint;
  const c = new pg.Client({ host: e.host, port: e.port, user: e.user, password: e.password, database: e.database });
  await c.connect();
  try {
    return (await c.query<{ name: Buffer }>('SELECT DISTINCT name FROM kv ORDER BY name')).rows.map((r) => r.name.toString());
  } finally {
    await c.end();
  }
}

async function mysqlKeys(endpoint: string): Promise<string[]> {
  const e = parseEndpoint(endpoint) as SqlServerEndpoint;
  const c = await mysql.createConnection({ host: e.host, port: e.port, user: e.user, password: e.password, database: e.database });
  try {
    const [rows] = await c.query('SELECT DISTINCT name FROM kv ORDER BY name');
    return (rows as { name: Buffer }[]).map((r) => r.name.toString());
  } finally {
    await c.end();
  }
}

async function etcdKeys(etcd: Etcd): Promise<string[]> {
  const r = await etcdctl(etcd.address, ['get', '', '--from-key', '--keys-only']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

describe('two layers, as in the documentation', { skip }, () => {
  let dir: string;
  let etcd: Etcd;
  let secrets: ScratchStore;
  let configmaps: ScratchStore;
  let childDefault: ScratchStore;
  let parentDefault: ScratchStore;
  let child: Middleware;
  let parent: Middleware;
  let client: EtcdClient;
  const deploymentsFile = () => path.join(dir, 'db', 'deployments.db');

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'hk-layers-'));
    etcd = await Etcd.start();
    [secrets, configmaps, childDefault, parentDefault] = await Promise.all([
      createScratchStore('mysql'),
      createScratchStore('postgres'),
      createScratchStore('sqlite'),
      createScratchStore('sqlite'),
    ]);
    // kube-system-topology.yaml of the documentation, with this machine's endpoints
    const childTopology = path.join(dir, 'kube-system-topology.yaml');
    await writeFile(
      childTopology,
      [
        'backends:',
        '- name: pods',
        `  endpoint: ${etcd.clientUrl}`,
        '  prefix:',
        '    prefix: pods',
        '- name: secrets',
        `  endpoint: ${secrets.endpoint}`,
        '  prefix:',
        '    prefix: secrets',
        '- name: configmaps',
        `  endpoint: ${configmaps.endpoint}`,
        '  prefix:',
        '    prefix: configmaps',
        '- name: deployments',
        `  endpoint: sqlite://${deploymentsFile()}?_journal=WAL&cache=shared`,
        '  prefix:',
        '    prefix: deployments',
        '',
      ].join('\n'),
    );
    child = await Middleware.start({ endpoint: childDefault.endpoint, compactInterval: '0', extraArgs: ['--topology-config', `file://${childTopology}`, '--query-timeout', '3s'] });
    // main-topology.yaml
    const mainTopology = path.join(dir, 'main-topology.yaml');
    await writeFile(mainTopology, `backends:\n- name: kube-system\n  endpoint: http://${child.address}\n  namespace:\n    namespace: kube-system\n`);
    parent = await Middleware.start({ endpoint: parentDefault.endpoint, compactInterval: '0', extraArgs: ['--topology-config', `file://${mainTopology}`, '--query-timeout', '3s'] });
    client = new EtcdClient(parent.address);
  });

  after(async () => {
    client?.close();
    await parent?.stop();
    await child?.stop();
    await etcd?.destroy();
    for (const s of [secrets, configmaps, childDefault, parentDefault]) await s?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('puts every key where the rules say, and nowhere else, with one revision space', async () => {
    const keys = {
      parent: ['/registry/configmaps/default/app', '/registry/namespaces/kube-system', '/registry/pods/default/web'],
      etcd: ['/registry/pods/kube-system/coredns'],
      secrets: ['/registry/secrets/kube-system/token'],
      configmaps: ['/registry/configmaps/kube-system/coredns'],
      deployments: ['/registry/deployments/kube-system/coredns'],
      childDefault: ['/registry/services/specs/kube-system/kube-dns'],
    };
    const revisions = new Map<string, string>();
    for (const key of Object.values(keys).flat()) revisions.set(key, (await client.put({ key: b(key), value: b(`value of ${key}`) })).header.revision);

    assert.deepEqual(keysIn(parentDefault.endpoint.replace('sqlite://', '')), keys.parent);
    assert.deepEqual(data(await etcdKeys(etcd)), keys.etcd);
    assert.deepEqual(await mysqlKeys(secrets.endpoint), keys.secrets);
    assert.deepEqual(await postgresKeys(configmaps.endpoint), keys.configmaps);
    assert.deepEqual(keysIn(deploymentsFile()), keys.deployments);
    assert.deepEqual(data(keysIn(childDefault.endpoint.replace('sqlite://', ''))), keys.childDefault);

    // through the top layer: one etcd, global revisions, one list across both layers
    const all = await client.range({ key: b('/registry/'), range_end: b('/registry0') });
    assert.deepEqual(
      all.kvs.map((kv) => [kv.key.toString(), kv.value.toString(), kv.mod_revision]),
      [...revisions.keys()].sort().map((k) => [k, `value of ${k}`, revisions.get(k)]),
    );
    const ctl = await etcdctl(parent.address, ['get', '/registry/', '--prefix', '--keys-only']);
    assert.deepEqual(ctl.stdout.split('\n').filter(Boolean), [...revisions.keys()].sort());
    const pods = await client.range({ key: b('/registry/pods/'), range_end: b('/registry/pods0'), limit: 1 });
    assert.deepEqual([pods.count, pods.more, pods.kvs[0]!.key.toString()], ['2', true, '/registry/pods/default/web'], 'one prefix split across layers pages as one');
  });

  it('kill -9 of the child layer: only its keys fail, with Unavailable; nothing acknowledged is lost; watchers see each event once', async () => {
    const start = BigInt((await client.range({ key: b('/x') })).header.revision);
    const watch = client.watch();
    const w = (await watch.create({ key: b('/registry/leases/'), range_end: b('/registry/leases0'), start_revision: String(start + 1n) })).watch_id;
    const acked: AckedWrites = new Map();
    let childDown = false;
    let failedChild = 0;
    let okParentWhileDown = 0;
    let stop = false;
    const writer = async (ns: string, n: number) => {
      for (let i = 0; !stop && i < 2000; i++) {
        const key = `/registry/leases/${ns}/w${n}-${i}`;
        try {
          const res = await client.put({ key: b(key), value: b(`v${i}`) });
          acked.set(key, { value: `v${i}`, revision: BigInt(res.header.revision) });
          if (childDown && ns === 'default') okParentWhileDown++;
        } catch (err) {
          const code = (err as { code?: number }).code;
          assert.equal(code, Status.UNAVAILABLE, `a write during the outage fails with Unavailable: ${String(err)}`);
          assert.equal(ns, 'kube-system', `a key of the top layer failed: ${String(err)}`);
          failedChild++;
        }
      }
    };
    const writers = Promise.all(['kube-system', 'default', 'kube-system'].map((ns, n) => writer(ns, n)));
    await waitUntil('writes before the crash', () => (acked.size >= 40 ? true : undefined), { timeoutMs: 30_000 });
    await child.kill9();
    childDown = true;
    await waitUntil('child writes failing, top writes going on', () => (failedChild >= 3 && okParentWhileDown >= 3 ? true : undefined), { timeoutMs: 30_000 });
    await child.restart();
    childDown = false;
    await waitUntil('the child layer used again without restarting the top', async () => {
      try {
        await client.put({ key: b('/registry/leases/kube-system/after'), value: b('x') });
        return true;
      } catch {
        return undefined;
      }
    }, { timeoutMs: 30_000 });
    await new Promise((r) => setTimeout(r, 500));
    stop = true;
    await writers;
    await assertAckedWritesKept(client, { key: b('/registry/leases/'), range_end: b('/registry/leases0') }, acked, { stream: watch, id: w, timeoutMs: 30_000 });
    watch.close();
  });

  it('a child that serves one top layer is refused by another, with the reason', async () => {
    const other = await createScratchStore('sqlite');
    const topology = path.join(dir, 'other-topology.yaml');
    await writeFile(topology, `backends:\n- name: kube-system\n  endpoint: http://${child.address}\n  namespace:\n    namespace: kube-system\n`);
    try {
      await assert.rejects(
        Middleware.start({ endpoint: other.endpoint, compactInterval: '0', extraArgs: ['--topology-config', `file://${topology}`] }),
        /belongs to another HariKube cluster/,
      );
    } finally {
      await other.dispose();
    }
  });
});

/**
 * Hot reload from a topology file on the real middleware process: an added rule takes effect without a
 * restart, an invalid edit keeps the topology in effect (and says so in metrics and logs), and fixing the
 * file applies it. Ranges that span the backends stay one consistent, ordered keyspace throughout.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { b, prefixEnd } from '../support/bytes.js';
import { EtcdClient } from '../support/grpc.js';
import { Middleware } from '../support/middleware.js';
import { waitUntil } from '../support/wait.js';
import { metricValue } from '../support/metrics.js';
import { keysIn } from '../support/routed.js';



describe('topology file hot reload', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hk-topo-file-'));
  const topology = path.join(dir, 'topology.yaml');
  const db = (name: string) => path.join(dir, `${name}.db`);
  let middleware: Middleware;
  let client: EtcdClient;

  /** Replaces the file atomically, as editors and Kubernetes volume updates do. */
  function writeTopology(text: string): void {
    const tmp = `${topology}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, topology);
  }

  before(async () => {
    writeTopology(stringify({ backends: [] }));
    middleware = await Middleware.start({ endpoint: `sqlite://${db('default')}`, extraArgs: ['--topology-config', `file://${topology}`] });
    client = new EtcdClient(middleware.address);
  });

  after(async () => {
    client?.close();
    await middleware?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an added rule takes effect live', async () => {
    await client.put({ key: b('/registry/configmaps/default/a'), value: b('a') });
    writeTopology(stringify({ backends: [{ name: 'leases', endpoint: `sqlite://${db('leases')}`, prefix: { prefix: 'leases/' } }] }));
    await waitUntil('one rule in effect', async () => ((await metricValue(middleware, 'harikube_topology_rules')) === 1 ? true : undefined));
    await client.put({ key: b('/registry/leases/kube-node-lease/n1'), value: b('l') });
    assert.deepEqual(keysIn(db('leases')), ['/registry/leases/kube-node-lease/n1']);
    assert.deepEqual(keysIn(db('default')), ['/registry/configmaps/default/a']);
    const all = await client.range({ key: b('/registry/'), range_end: prefixEnd('/registry/'), limit: 1 });
    assert.deepEqual([all.kvs.map((kv) => kv.key.toString()), all.count, all.more], [['/registry/configmaps/default/a'], '2', true]);
  });

  it('an invalid edit keeps the topology in effect; fixing it applies it', async () => {
    writeTopology('backends:\n- name: leases\n  endpoint: sqlite://x.db\n  prefix: { prefix: leases/ }\n  bogus: 1\n');
    await waitUntil('the invalid edit to be reported', async () => ((await metricValue(middleware, 'harikube_topology_last_apply_failed')) === 1 ? true : undefined));
    assert.match(middleware.process!.tail(), /backends\[0\] \(name \\?"leases\\?"\)/);
    await client.put({ key: b('/registry/leases/kube-node-lease/n2'), value: b('l') });
    assert.ok(keysIn(db('leases')).includes('/registry/leases/kube-node-lease/n2'));

    writeTopology(
      stringify({
        backends: [
          { name: 'leases', endpoint: `sqlite://${db('leases')}`, prefix: { prefix: 'leases/' } },
          { name: 'events', endpoint: `sqlite://${db('events')}`, prefix: { prefix: 'events/' } },
        ],
      }),
    );
    await waitUntil('two rules in effect', async () => ((await metricValue(middleware, 'harikube_topology_rules')) === 2 ? true : undefined));
    assert.equal(await metricValue(middleware, 'harikube_topology_last_apply_failed'), 0);
    await client.put({ key: b('/registry/events/default/e1'), value: b('e') });
    assert.deepEqual(keysIn(db('events')), ['/registry/events/default/e1']);
  });
});

/**
 * Moves online migration does not support are refused cleanly by the real process: a topology change that
 * would move existing keys into or out of a child middleware whose own topology routes keys to a backend of
 * its own (moves into and out of a real etcd are migration-etcd.test.ts, of a plain child
 * migration-layers.test.ts). The middleware keeps serving by the topology in effect
 * (keys still routed as before, readiness unchanged), the log names the keys that would move and why, the
 * metrics count the refusal, GET /migrations shows no migration, and a later valid change applies.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { after, before, describe, it } from 'node:test';
import type { BackendRule } from '../../middleware/src/topology/schema.js';
import { b } from '../support/bytes.js';
import { Middleware } from '../support/middleware.js';
import { EtcdClient } from '../support/grpc.js';
import { MigrationRig } from '../support/migration-rig.js';
import { createScratchStore, type ScratchStore } from '../support/scratch-store.js';
import { storedKeys } from '../support/stored-keys.js';
import { waitUntil } from '../support/wait.js';

describe('moves into or out of a routed child middleware are refused; the middleware keeps serving', () => {
  let child: Middleware;
  let deep: Middleware;
  let childStore: ScratchStore;
  let deepStore: ScratchStore;
  let dir: string;
  let def: ScratchStore;
  let extra: ScratchStore;
  let rig: MigrationRig;
  let client: EtcdClient;
  let childRule: BackendRule;

  before(async () => {
    childStore = await createScratchStore('sqlite');
    deepStore = await createScratchStore('sqlite');
    deep = await Middleware.start({ endpoint: deepStore.endpoint, compactInterval: '0' });
    // the child's own topology sends events to a grandchild: its keys span backends, so it cannot copy rows
    dir = await mkdtemp(path.join(os.tmpdir(), 'hk-migration-refused-'));
    const childTopology = path.join(dir, 'child.yaml');
    await writeFile(childTopology, stringify({ backends: [{ name: 'deep', endpoint: `http://${deep.address}`, prefix: { prefix: 'events/' } }] }));
    child = await Middleware.start({ endpoint: childStore.endpoint, compactInterval: '0', extraArgs: ['--topology-config', `file://${childTopology}`] });
    def = await createScratchStore('sqlite');
    extra = await createScratchStore('sqlite');
    childRule = { name: 'child', endpoint: `http://${child.address}`, prefix: { prefix: 'leases/' } };
    rig = await MigrationRig.start({ endpoint: def.endpoint, rules: [childRule], migrationRate: 100 });
    client = new EtcdClient(rig.address);
    await client.put({ key: b('/registry/leases/kube-node-lease/n1'), value: b('n1') });
    await client.put({ key: b('/registry/configmaps/default/c1'), value: b('c1') });
  });

  after(async () => {
    client?.close();
    await rig?.stop();
    await child?.stop();
    await deep?.stop();
    await childStore?.dispose();
    await deepStore?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
    await def?.dispose();
    await extra?.dispose();
  });

  /** Keys the child holds under /registry/ (its own view, asked directly). */
  async function inChild(): Promise<string[]> {
    const direct = new EtcdClient(child.address);
    try {
      return (await direct.range({ key: b('/registry/'), range_end: b('/registry0'), keys_only: true })).kvs.map((kv) => kv.key.toString());
    } finally {
      direct.close();
    }
  }

  /** Writes a topology, waits for its refusal and checks that the one in effect still routes as before. */
  async function refused(rules: BackendRule[], why: RegExp, n: number): Promise<void> {
    const logBefore = rig.log().length;
    rig.writeTopology(rules);
    await waitUntil('the refusal', async () => ((await rig.metric('harikube_topology_last_apply_failed')) === 1 ? true : undefined), { timeoutMs: 30_000 });
    await waitUntil('the refusal in the log', () => (why.test(rig.log()) ? true : undefined), { timeoutMs: 10_000 }).catch((err) => {
      throw new Error(`${(err as Error).message}; log since the change:\n${rig.log().slice(Math.max(0, logBefore - 2000))}`);
    });
    const status = await rig.status();
    assert.deepEqual([status.active, status.sources], [false, []], 'a refused change started a migration');
    assert.equal(await rig.metric('harikube_migration_sources'), 0);
    assert.equal((await fetch(`http://${rig.middleware.metricsAddress}/readyz`)).status, 200, 'not ready after a refused change');
    // still routed by the topology in effect: leases to the child, everything else to the default backend
    await client.put({ key: b(`/registry/leases/kube-node-lease/after-${n}`), value: b('l') });
    await client.put({ key: b(`/registry/configmaps/default/after-${n}`), value: b('c') });
    await client.put({ key: b(`/registry/secrets/default/after-${n}`), value: b('s') });
    assert.ok((await inChild()).includes(`/registry/leases/kube-node-lease/after-${n}`), 'a lease written after the refusal is not in the child');
    const local = await storedKeys(def.endpoint);
    for (const k of [`/registry/configmaps/default/after-${n}`, `/registry/secrets/default/after-${n}`]) assert.ok(local.includes(k), `${k} is not in the default backend`);
    assert.ok(!(await inChild()).some((k) => k.startsWith('/registry/configmaps/')), 'configmaps went to the child');
    const all = await client.range({ key: b('/registry/'), range_end: b('/registry0') });
    assert.equal(Number(all.count), all.kvs.length);
  }

  it('a change that would move keys into the child', async () => {
    await refused(
      [{ ...childRule, prefix: undefined, regexp: { key: '^/registry/(leases|configmaps)/' } }],
      /refused: it would move existing keys into or out of a backend that cannot take part in a migration: a child middleware[^"]*1 key\(s\) from default backend to \\"child\\": \/registry\/configmaps\/default\/c1 \.\. \/registry\/configmaps\/default\/c1/,
      1,
    );
  });

  it('a change that would move keys out of the child (its rule removed), with an unrelated new rule: none of it applies', async () => {
    await refused(
      [{ name: 'secrets', endpoint: extra.endpoint, prefix: { prefix: 'secrets/' } }],
      /refused: it would move existing keys into or out of a backend that cannot take part in a migration: a child middleware[^"]*2 key\(s\) from \\"child\\" to default backend: \/registry\/leases\/kube-node-lease\/after-1 \.\. \/registry\/leases\/kube-node-lease\/n1/,
      2,
    );
    assert.deepEqual(await storedKeys(extra.endpoint).catch(() => []), [], 'the new rule of the refused change took keys');
  });

  it('a valid change afterwards applies', async () => {
    rig.writeTopology([childRule, { name: 'secrets', endpoint: extra.endpoint, prefix: { prefix: 'secrets/' } }]);
    await waitUntil('the change to apply', async () => ((await rig.metric('harikube_topology_rules')) === 2 ? true : undefined), { timeoutMs: 30_000 });
    assert.equal(await rig.metric('harikube_topology_last_apply_failed'), 0);
    // the secrets written meanwhile move to the new rule's database, online
    await rig.waitStatus('the secrets to move', (s) => (!s.active && s.sources.some((x) => x.phase === 'done') ? true : undefined), 60_000);
    assert.deepEqual(await storedKeys(extra.endpoint), ['/registry/secrets/default/after-1', '/registry/secrets/default/after-2']);
    const got = await client.range({ key: b('/registry/secrets/'), range_end: b('/registry/secrets0') });
    assert.deepEqual(got.kvs.map((kv) => kv.key.toString()), ['/registry/secrets/default/after-1', '/registry/secrets/default/after-2']);
  });
});

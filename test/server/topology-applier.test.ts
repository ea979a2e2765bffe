/**
 * Topology changes on a live store over real SQLite files: keys go where the rules say, reads merge across
 * backends, a change that moves existing keys takes effect at once while they still live in their old
 * backend (no mover runs here: migration.test.ts moves them), and a change that would reuse a foreign
 * database or point at an unreachable one is refused while the routing in effect stays. The applied
 * topology and the migrations in progress survive a restart.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openBackend } from '../../middleware/src/backends/index.js';
import { StoreKeyReader } from '../../middleware/src/mvcc/key-reader.js';
import { Store } from '../../middleware/src/mvcc/store.js';
import { RoutedBackend } from '../../middleware/src/router/routed-backend.js';
import { TopologyApplier } from '../../middleware/src/server/topology-applier.js';
import type { BackendRule, TopologyDocument } from '../../middleware/src/topology/schema.js';
import { b, prefixEnd } from '../support/bytes.js';
import { freePort } from '../support/env.js';
import { waitUntil } from '../support/wait.js';
import { keysIn } from '../support/routed.js';

const factory = (rule: BackendRule) => openBackend(rule.endpoint, { tls: rule.backendTLS, pool: rule.connectionPool });


class Fixture {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'hk-applier-'));
  store!: Store;
  routed!: RoutedBackend;
  applier!: TopologyApplier;

  file(name: string): string {
    return path.join(this.dir, `${name}.db`);
  }

  endpoint(name: string): string {
    return `sqlite://${this.file(name)}`;
  }

  async open(): Promise<void> {
    this.routed = new RoutedBackend(openBackend(this.endpoint('default')), factory);
    // a one-event ring sends watch catch-up to storage, where retired backends must still be read
    this.store = await Store.open({ backend: this.routed, ringEvents: 1 });
    this.applier = new TopologyApplier({ store: this.store, routed: this.routed, defaultEndpoint: this.endpoint('default'), factory });
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  apply(doc: TopologyDocument): ReturnType<TopologyApplier['apply']> {
    return this.applier.apply(doc, 'test');
  }

  put(key: string, value = 'v'): Promise<unknown> {
    return this.store.put({ key: b(key), value: b(value) });
  }

  async list(prefix: string, limit = 0): Promise<{ keys: string[]; count: number; more: boolean }> {
    const res = await this.store.range({ key: b(prefix), range_end: prefixEnd(prefix), limit });
    return { keys: res.kvs.map((kv) => kv.key.toString()), count: res.count, more: res.more };
  }

  rule(name: string, prefix: string): BackendRule {
    return { name, endpoint: this.endpoint(name), prefix: { prefix } };
  }
}

describe('topology changes on a live store', () => {
  const f = new Fixture();
  before(() => f.open());
  after(async () => {
    await f.close();
    rmSync(f.dir, { recursive: true, force: true });
  });

  it('routes new keys by the rules and merges reads across backends', async () => {
    await f.put('/registry/configmaps/default/a');
    const outcome = await f.apply({ backends: [f.rule('shirts', 'stable.example.com/shirts/'), f.rule('pods', 'pods/')] });
    assert.deepEqual(outcome, { changed: true, added: ['shirts', 'pods'], removed: [] });
    await f.put('/registry/stable.example.com/shirts/default/red');
    await f.put('/registry/pods/default/p1');
    await f.put('/registry/pods/kube-system/p2');
    await f.put('/registry/services/specs/default/s');

    assert.deepEqual(keysIn(f.file('shirts')), ['/registry/stable.example.com/shirts/default/red']);
    assert.deepEqual(keysIn(f.file('pods')), ['/registry/pods/default/p1', '/registry/pods/kube-system/p2']);
    assert.deepEqual(keysIn(f.file('default')), ['/registry/configmaps/default/a', '/registry/services/specs/default/s']);

    // one ordered snapshot across three databases; limit, count and more are global
    const all = await f.list('/registry/');
    assert.deepEqual(all.keys, [
      '/registry/configmaps/default/a',
      '/registry/pods/default/p1',
      '/registry/pods/kube-system/p2',
      '/registry/services/specs/default/s',
      '/registry/stable.example.com/shirts/default/red',
    ]);
    const page = await f.list('/registry/', 2);
    assert.deepEqual(page, { keys: all.keys.slice(0, 2), count: 5, more: true });
  });

  it('an unchanged document is a no-op', async () => {
    const doc = f.routed.table.document;
    assert.deepEqual(await f.apply(structuredClone(doc) as TopologyDocument), { changed: false, added: [], removed: [] });
  });

  it('a change that moves existing keys takes effect at once: writes go to the new owner, reads see every key once', async () => {
    await f.put('/registry/configmaps/default/gone');
    const pinned = f.store.revision;
    const before = await f.list('/registry/');
    await f.apply({ backends: [...f.routed.table.document.backends, f.rule('configmaps', 'configmaps/')] });
    assert.ok(f.routed.table.migrating, 'the default backend holds configmaps that now belong to "configmaps"');
    assert.deepEqual([...f.routed.table.sources.values()].map((s) => s.route), ['']);
    // nothing moved yet (no mover runs here): the keys are still in the default database, and read as before
    assert.ok(keysIn(f.file('default')).includes('/registry/configmaps/default/a'));
    assert.deepEqual(await f.list('/registry/'), before);

    // an update goes to the new owner and continues the key's version; a delete hides the copy left behind
    const a = await f.store.range({ key: b('/registry/configmaps/default/a') });
    await f.put('/registry/configmaps/default/a', 'v2');
    await f.store.deleteRange({ key: b('/registry/configmaps/default/gone') });
    assert.deepEqual(keysIn(f.file('configmaps')), ['/registry/configmaps/default/a', '/registry/configmaps/default/gone']);
    assert.ok(keysIn(f.file('default')).includes('/registry/configmaps/default/gone'), 'the old copy is still there');
    const now = await f.store.range({ key: b('/registry/configmaps/default/a') });
    assert.equal(Number(now.kvs[0]!.version), Number(a.kvs[0]!.version) + 1);
    assert.equal(Number(now.kvs[0]!.create_revision), Number(a.kvs[0]!.create_revision));
    const cms = await f.list('/registry/configmaps/');
    assert.deepEqual(cms.keys, ['/registry/configmaps/default/a']);
    assert.equal(cms.count, 1);

    // a read pinned before the change still sees the old state, page by page
    const old = await f.store.range({ key: b('/registry/'), range_end: prefixEnd('/registry/'), revision: pinned, limit: 2 });
    assert.deepEqual(old.kvs.map((kv) => kv.key.toString()), before.keys.slice(0, 2));
    assert.equal(Number(old.count), before.count);
  });

  it('removing a rule whose backend holds keys keeps them readable and sends their new writes to the new owner', async () => {
    const from = f.store.revision;
    const withoutPods = f.routed.table.document.backends.filter((r) => r.name !== 'pods');
    assert.deepEqual((await f.apply({ backends: withoutPods })).removed, ['pods']);
    assert.equal(f.routed.table.retired.length, 1, 'the pods database stays open as a migration source');
    assert.deepEqual((await f.list('/registry/pods/')).keys, ['/registry/pods/default/p1', '/registry/pods/kube-system/p2']);

    // a watch from before sees the deletes, whether the key is still in the retired backend or not
    await f.store.deleteRange({ key: b('/registry/pods/'), range_end: prefixEnd('/registry/pods/') });
    const seen: Array<[string | undefined, number]> = [];
    const cancel = new StoreKeyReader(f.store).watch(b('/registry/pods/default/p1'), from, (v, r) => seen.push([v?.toString(), r]), (e) => assert.fail(e));
    try {
      await waitUntil('the delete of p1', () => (seen.length ? seen : undefined));
      assert.equal(seen[0]![0], undefined);
    } finally {
      cancel();
    }
    // the key is free again: a new create goes to the default backend with version 1
    await f.put('/registry/pods/default/p1', 'again');
    const got = await f.store.range({ key: b('/registry/pods/default/p1') });
    assert.equal(Number(got.kvs[0]!.version), 1);
    assert.ok(keysIn(f.file('default')).includes('/registry/pods/default/p1'));
  });

  it('refuses a rule that points at the default database, or at an unreachable one', async () => {
    const before = f.routed.table;
    await assert.rejects(
      f.apply({ backends: [{ name: 'dup', endpoint: f.endpoint('default'), prefix: { prefix: 'leases/' } }] }),
      /backends\[0\] \(name "dup"\) field "endpoint": .* is the same database as the default backend/,
    );
    const port = await freePort();
    await assert.rejects(
      f.apply({ backends: [...before.document.backends, { name: 'gone', endpoint: `postgres://u:hunter2@127.0.0.1:${port}/x`, prefix: { prefix: 'leases/' } }] }),
      (err: Error) => {
        assert.match(err.message, new RegExp(`rule "gone" \\(postgres://u:\\*\\*\\*@127\\.0\\.0\\.1:${port}/x\\)`));
        assert.doesNotMatch(err.message, /hunter2/);
        return true;
      },
    );
    assert.equal(f.routed.table, before);
  });

  it('refuses a database that another middleware owns', async () => {
    const other = new Fixture();
    await other.open();
    try {
      await other.apply({ backends: [other.rule('theirs', 'theirs/')] });
      await other.put('/registry/theirs/x');
    } finally {
      await other.close();
    }
    try {
      await assert.rejects(
        f.apply({ backends: [...f.routed.table.document.backends, { name: 'stolen', endpoint: other.endpoint('theirs'), prefix: { prefix: 'theirs/' } }] }),
        /rule "stolen" .* belongs to another HariKube cluster/,
      );
    } finally {
      rmSync(other.dir, { recursive: true, force: true });
    }
  });

  it('a rename with the same database keeps the data where it is', async () => {
    const docs = f.routed.table.document.backends.map((r) => (r.name === 'shirts' ? { ...r, name: 'apparel' } : r));
    assert.deepEqual(await f.apply({ backends: docs }), { changed: true, added: ['apparel'], removed: ['shirts'] });
    assert.deepEqual((await f.list('/registry/stable.example.com/')).keys, ['/registry/stable.example.com/shirts/default/red']);
  });

  it('the topology in effect and the migrations in progress survive a restart, and revisions continue above every earlier one', async () => {
    const rev = f.store.revision;
    const doc = f.routed.table.document;
    const sources = [...f.routed.table.sources.values()];
    const all = await f.list('/registry/');
    await f.close();
    await f.open();
    assert.deepEqual(f.routed.table.document, doc);
    assert.deepEqual([...f.routed.table.sources.values()], sources);
    assert.equal(f.routed.table.retired.length, 1, 'the removed pods rule still holds data: reopened from the migration state');
    assert.deepEqual(await f.list('/registry/'), all);
    assert.ok(f.store.revision >= rev);
    await f.put('/registry/stable.example.com/shirts/default/blue');
    assert.ok(keysIn(f.file('shirts')).includes('/registry/stable.example.com/shirts/default/blue'));
    const res = await f.store.range({ key: b('/registry/stable.example.com/shirts/default/blue') });
    assert.ok(Number(res.kvs[0]!.mod_revision) > rev);
  });
});

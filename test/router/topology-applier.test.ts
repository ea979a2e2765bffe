/**
 * Topology changes on a live store over real SQLite files: keys go where the rules say, reads merge across
 * backends, and a change that would strand existing keys, reuse a foreign database or point at an
 * unreachable one is refused while the routing in effect stays. The applied topology survives a restart.
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
import { TopologyApplier, TopologyRefusedError } from '../../middleware/src/router/topology-applier.js';
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

  it('refuses a change that would move existing keys, naming them, and keeps routing as it was', async () => {
    const before = f.routed.table;
    await assert.rejects(
      f.apply({ backends: [...before.document.backends, f.rule('configmaps', 'configmaps/')] }),
      (err: unknown) => {
        assert.ok(err instanceof TopologyRefusedError);
        assert.deepEqual(err.moves, [
          { from: '', to: 'configmaps', count: 1, first: '/registry/configmaps/default/a', last: '/registry/configmaps/default/a' },
        ]);
        assert.match(err.message, /1 key\(s\) from default backend to "configmaps": \/registry\/configmaps\/default\/a/);
        return true;
      },
    );
    assert.equal(f.routed.table, before);
    await f.put('/registry/configmaps/default/b');
    assert.ok(keysIn(f.file('default')).includes('/registry/configmaps/default/b'));
  });

  it('refuses removing a rule whose backend holds live keys', async () => {
    const before = f.routed.table;
    const withoutPods = before.document.backends.filter((r) => r.name !== 'pods');
    await assert.rejects(f.apply({ backends: withoutPods }), /2 key\(s\) from "pods" to default backend/);
    assert.equal(f.routed.table, before);
  });

  it('removing an emptied rule keeps its history readable: a watch from before sees its deletes', async () => {
    const from = f.store.revision;
    await f.store.deleteRange({ key: b('/registry/pods/'), range_end: prefixEnd('/registry/pods/') });
    const withoutPods = f.routed.table.document.backends.filter((r) => r.name !== 'pods');
    assert.deepEqual((await f.apply({ backends: withoutPods })).removed, ['pods']);
    const seen: Array<[string | undefined, number]> = [];
    const cancel = new StoreKeyReader(f.store).watch(b('/registry/pods/default/p1'), from, (v, r) => seen.push([v?.toString(), r]), (e) => assert.fail(e));
    try {
      await waitUntil('the delete of p1 from the retired backend', () => (seen.length ? seen : undefined));
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

  it('the topology in effect survives a restart, and revisions continue above every earlier one', async () => {
    const rev = f.store.revision;
    const doc = f.routed.table.document;
    await f.close();
    await f.open();
    assert.deepEqual(f.routed.table.document, doc);
    assert.ok(f.store.revision >= rev);
    await f.put('/registry/stable.example.com/shirts/default/blue');
    assert.ok(keysIn(f.file('shirts')).includes('/registry/stable.example.com/shirts/default/blue'));
    const res = await f.store.range({ key: b('/registry/stable.example.com/shirts/default/blue') });
    assert.ok(Number(res.kvs[0]!.mod_revision) > rev);
  });
});

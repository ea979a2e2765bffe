/**
 * Paged lists pinned to a revision, the way kube-apiserver lists (limit + revision + continue key), while
 * writers change the same prefix: the pages must join into exactly the snapshot at that revision.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { b, prefixEnd, rev, text, underPrefix } from '../support/bytes.js';
import { contractSuite } from '../support/contract.js';
import type { EtcdClient } from '../support/grpc.js';
import type { KeyValue } from '../support/etcd-types.js';
import { SPLIT_PREFIX, assertSplitStored, splitKey } from '../support/namespace-split.js';
import { SPLIT_NAMESPACE } from '../support/targets.js';

const KEYS = 60;
const PAGE = 7;

/** Lists [prefix, end) at `revision` in pages of PAGE, checking each page's count and more. */
async function pagedList(client: EtcdClient, prefix: string, revision: bigint): Promise<KeyValue[]> {
  const end = prefixEnd(prefix);
  const all: KeyValue[] = [];
  let key = b(prefix);
  for (let pages = 0; ; pages++) {
    assert.ok(pages < 100, 'paging does not terminate');
    const page = await client.range({ key, range_end: end, limit: PAGE, revision: String(revision) });
    assert.ok(rev(page) >= revision, 'the header reports the current revision, never less than the one read');
    const remaining = BigInt(page.count);
    assert.equal(page.more, remaining > BigInt(page.kvs.length), 'more = count > returned');
    assert.ok(page.kvs.length === PAGE || !page.more);
    all.push(...page.kvs);
    if (!page.more) return all;
    key = Buffer.concat([page.kvs.at(-1)!.key, Buffer.from([0])]);
  }
}

const summary = (kvs: KeyValue[]) => kvs.map((kv) => [text(kv.key), text(kv.value), kv.mod_revision]);
/** Everything the store keeps of a key, for comparing a list with the writes that made it. */
const full = (kvs: KeyValue[]) => kvs.map((kv) => [text(kv.key), text(kv.value), kv.create_revision, kv.mod_revision, kv.version]);

await contractSuite('paged list', (t) => {
  it('pages at a pinned revision join into exactly that snapshot while writers run', async () => {
    const p = t.prefix('paged');
    const name = (i: number) => `${p}${String(i).padStart(3, '0')}`;
    for (let i = 0; i < KEYS; i++) await t.client.put({ key: b(name(i)), value: b(`v0-${i}`) });
    const snapshot = await t.client.range(underPrefix(p));
    const pinned = rev(snapshot);
    assert.equal(snapshot.count, String(KEYS));

    // Bounded writers: each updates, deletes and creates keys of its own residue class.
    let stop = false;
    const midRevisions: bigint[] = [];
    const writer = async (wi: number) => {
      const c = t.newClient();
      for (let n = 0; n < 60 && !stop; n++) {
        const i = (n * 4 + wi) % KEYS;
        const op = n % 3;
        const res =
          op === 0
            ? await c.put({ key: b(name(i)), value: b(`w${wi}-${n}`) })
            : op === 1
              ? await c.deleteRange({ key: b(name(i)) })
              : await c.put({ key: b(name(KEYS + wi * 100 + n)), value: b(`new-${n}`) });
        if (n === 20) midRevisions.push(rev(res));
      }
    };
    let writersDone = false;
    const writers = Promise.all([0, 1, 2, 3].map(writer)).finally(() => (writersDone = true));
    try {
      // Page through the pinned snapshot for as long as the writers run (at least 3, at most 50 rounds).
      for (let round = 0; round < 50 && (round < 3 || !writersDone); round++) {
        assert.deepEqual(summary(await pagedList(t.client, p, pinned)), summary(snapshot.kvs), `round ${round}`);
      }
    } finally {
      stop = true;
      await writers;
    }
    // A revision taken mid-write: paged and unpaged reads of it agree.
    for (const r of midRevisions) {
      const whole = await t.client.range({ ...underPrefix(p), revision: String(r) });
      assert.deepEqual(summary(await pagedList(t.client, p, r)), summary(whole.kvs));
      assert.ok(whole.kvs.every((kv) => BigInt(kv.mod_revision) <= r), 'nothing newer than the read revision');
    }
    // And the pinned snapshot is still exactly what it was.
    assert.deepEqual(summary(await pagedList(t.client, p, pinned)), summary(snapshot.kvs));
  });

  it('count on a continued page counts from the continue key at the pinned revision', async () => {
    const p = t.prefix('paged-count');
    for (let i = 0; i < 10; i++) await t.client.put({ key: b(`${p}${i}`), value: b('v') });
    const pinned = rev(await t.client.range({ key: b(p) }));
    for (let i = 0; i < 5; i++) await t.client.deleteRange({ key: b(`${p}${i}`) });
    await t.client.put({ key: b(`${p}9x`), value: b('new') });
    const page = await t.client.range({ key: b(`${p}3`), range_end: prefixEnd(p), limit: 2, revision: String(pinned) });
    assert.deepEqual(page.kvs.map((kv) => text(kv.key).slice(p.length)), ['3', '4']);
    assert.deepEqual([page.count, page.more], ['7', true]);
    const now = await t.client.range({ key: b(`${p}3`), range_end: prefixEnd(p), limit: 2 });
    assert.deepEqual(now.kvs.map((kv) => text(kv.key).slice(p.length)), ['5', '6']);
    assert.deepEqual([now.count, now.more], ['6', true]);
  });

  // The only case of this file under /registry/configmaps/: the whole resource prefix is its own.
  it('a resource prefix a namespace rule splits over two backends lists as one store: order, revisions, count, limit + continue', async () => {
    // ns-0 < ns-a < ns-b: on the routed target the keys of ns-a (PostgreSQL) sit between keys of the default SQLite
    const namespaces = ['ns-0', SPLIT_NAMESPACE, 'ns-b'];
    const key = (i: number) => splitKey(namespaces[i % 3]!, `cm-${String(i).padStart(2, '0')}-X`);
    const model = new Map<string, [value: string, create: string, mod: string, version: string]>();
    const expected = () => [...model.entries()].sort(([a], [c]) => Buffer.compare(b(a), b(c))).map(([k, v]) => [k, ...v]);
    const r0 = rev(await t.client.range({ key: b(SPLIT_PREFIX) }));
    // creates alternate between the backends: one revision space, one revision per write
    for (let i = 0; i < 24; i++) {
      const r = rev(await t.client.put({ key: b(key(i)), value: b(`v0-${i}`) }));
      assert.equal(r, r0 + 1n + BigInt(i), `create ${i} (${key(i)})`);
      model.set(key(i), [`v0-${i}`, String(r), String(r), '1']);
    }
    const created = await t.client.range({ ...underPrefix(SPLIT_PREFIX), revision: String(r0 + 24n) });
    for (let i = 0; i < 24; i += 4) {
      const r = String(rev(await t.client.put({ key: b(key(i)), value: b(`v1-${i}`) })));
      model.set(key(i), [`v1-${i}`, model.get(key(i))![1], r, '2']);
    }
    for (let i = 1; i < 24; i += 4) {
      assert.equal((await t.client.deleteRange({ key: b(key(i)) })).deleted, '1');
      model.delete(key(i));
    }

    const snapshot = await t.client.range(underPrefix(SPLIT_PREFIX));
    assert.deepEqual(full(snapshot.kvs), expected(), 'keys in byte order across the namespaces, revisions and versions as written');
    assert.deepEqual([snapshot.count, snapshot.more], [String(model.size), false]);
    const limited = await t.client.range({ ...underPrefix(SPLIT_PREFIX), limit: 5 });
    assert.deepEqual(full(limited.kvs), expected().slice(0, 5));
    assert.deepEqual([limited.count, limited.more], [String(model.size), true], 'count is the whole range, not the page');
    // an older revision: the 24 creates, before any update or delete
    assert.deepEqual(full(created.kvs), Array.from({ length: 24 }, (_, i) => [key(i), `v0-${i}`, String(r0 + 1n + BigInt(i)), String(r0 + 1n + BigInt(i)), '1']).sort((x, y) => Buffer.compare(b(x[0]!), b(y[0]!))));

    // writes on both sides of the split after the snapshot: the pinned pages still join into the snapshot
    const pinned = rev(snapshot);
    for (let i = 24; i < 30; i++) await t.client.put({ key: b(key(i)), value: b(`v0-${i}`) });
    for (const i of [0, 2, 4]) await t.client.deleteRange({ key: b(key(i)) });
    assert.deepEqual(full(await pagedList(t.client, SPLIT_PREFIX, pinned)), full(snapshot.kvs), 'pages pinned to the snapshot');
    const now = await t.client.range(underPrefix(SPLIT_PREFIX));
    assert.deepEqual(full(await pagedList(t.client, SPLIT_PREFIX, rev(now))), full(now.kvs), 'pages at the current revision');
    // a continued page counts from its continue key, at the pinned revision
    const from = text(snapshot.kvs[4]!.key);
    const page = await t.client.range({ key: b(from), range_end: prefixEnd(SPLIT_PREFIX), limit: 3, revision: String(pinned) });
    assert.deepEqual(full(page.kvs), full(snapshot.kvs.slice(4, 7)));
    assert.deepEqual([page.count, page.more], [String(snapshot.kvs.length - 4), true]);

    await assertSplitStored(t.server, Array.from({ length: 30 }, (_, i) => key(i)));
  });
});

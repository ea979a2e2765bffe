/**
 * Compaction (own file: compaction is global to a server). The compact revision stays readable, older
 * revisions answer the exact "compacted" error, latest values survive, and watches starting below it are
 * canceled with compact_revision.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { b, rev, text, underPrefix } from '../support/bytes.js';
import { contractSuite } from '../support/contract.js';
import { ETCD_ERRORS } from '../support/etcd-errors.js';

await contractSuite('compaction', (t) => {
  it('the compact revision stays readable; below it is OutOfRange "required revision has been compacted"', async () => {
    const p = t.prefix('compact-read');
    const r1 = rev(await t.client.put({ key: b(`${p}a`), value: b('1') }));
    const r2 = rev(await t.client.put({ key: b(`${p}a`), value: b('2') }));
    const r3 = rev(await t.client.put({ key: b(`${p}b`), value: b('1') }));
    const compacted = await t.client.compact(String(r2));
    assert.equal(rev(compacted), r3, 'Compact answers with the current revision');

    const atR2 = await t.client.range({ ...underPrefix(p), revision: String(r2) });
    assert.deepEqual(atR2.kvs.map((kv) => [text(kv.key).slice(p.length), text(kv.value)]), [['a', '2']]);
    assert.equal(rev(atR2), r3);
    await assert.rejects(t.client.range({ ...underPrefix(p), revision: String(r1) }), ETCD_ERRORS.compacted);
    await assert.rejects(t.client.range({ key: b(`${p}a`), revision: String(r2 - 1n) }), ETCD_ERRORS.compacted);
    const now = await t.client.range(underPrefix(p));
    assert.deepEqual(now.kvs.map((kv) => text(kv.value)), ['2', '1']);
  });

  it('keeps the latest version of keys last written before the compact revision; deleted keys stay deleted', async () => {
    const p = t.prefix('compact-keep');
    const rOld = rev(await t.client.put({ key: b(`${p}old`), value: b('kept') }));
    await t.client.put({ key: b(`${p}gone`), value: b('x') });
    await t.client.deleteRange({ key: b(`${p}gone`) });
    const rc = rev(await t.client.put({ key: b(`${p}filler`), value: b('f') }));
    await t.client.compact(String(rc));
    for (const revision of [undefined, String(rc)]) {
      const res = await t.client.range({ ...underPrefix(p), ...(revision ? { revision } : {}) });
      assert.deepEqual(res.kvs.map((kv) => text(kv.key).slice(p.length)), ['filler', 'old']);
      assert.equal(res.kvs[1]!.mod_revision, String(rOld));
      assert.equal(text(res.kvs[1]!.value), 'kept');
    }
  });

  it('compacting again at or below the compact revision is an error; so is a future revision', async () => {
    const p = t.prefix('compact-twice');
    const r1 = rev(await t.client.put({ key: b(`${p}k`), value: b('1') }));
    await t.client.compact(String(r1));
    await assert.rejects(t.client.compact(String(r1)), ETCD_ERRORS.compacted);
    await assert.rejects(t.client.compact(String(r1 - 1n)), ETCD_ERRORS.compacted);
    await assert.rejects(t.client.compact(String(r1 + 10n)), ETCD_ERRORS.futureRevision);
    assert.equal(text((await t.client.range({ key: b(`${p}k`) })).kvs[0]!.value), '1');
  });

  it('a watch starting below the compact revision is canceled with compact_revision', async () => {
    const p = t.prefix('compact-watch');
    const r1 = rev(await t.client.put({ key: b(`${p}k`), value: b('1') }));
    const r2 = rev(await t.client.put({ key: b(`${p}k`), value: b('2') }));
    await t.client.compact(String(r2));
    const w = t.client.watch();
    const index = w.sendCreate({ ...underPrefix(p), start_revision: String(r1) });
    const canceled = await w.waitFor('the compaction cancel', (rs) => rs.find((r) => r.canceled));
    assert.equal(canceled.compact_revision, String(r2));
    assert.deepEqual(canceled.events, []);
    // etcd answers `created` first, then the cancel, both for the same watch id.
    const created = await w.createdResponse(index);
    assert.equal(canceled.watch_id, created.watch_id);

    // At exactly the compact revision the watch is fine and replays from it.
    const ok = (await w.create({ ...underPrefix(p), start_revision: String(r2) })).watch_id;
    const [event] = await w.waitForEvents(ok, 1);
    assert.deepEqual([text(event!.kv.value), event!.kv.mod_revision], ['2', String(r2)]);
    w.close();
  });
});

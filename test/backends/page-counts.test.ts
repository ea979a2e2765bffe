/**
 * The Store derives etcd's `count` of a continued page from the page before (mvcc/range.ts PageCounts)
 * instead of asking the backend again. Every count must equal a fresh count of the same range and revision,
 * including for requests the derivation must not apply to.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Backend } from '../../middleware/src/backends/backend.js';
import { openBackend } from '../../middleware/src/backends/index.js';
import type { RangeRequest } from '../../middleware/src/mvcc/api.js';
import { Store } from '../../middleware/src/mvcc/store.js';

const b = (s: string) => Buffer.from(s);
const after0 = (key: Buffer) => Buffer.concat([key, Buffer.from([0])]);
const PREFIX = '/registry/pods/';
const END = b('/registry/pods0');

/** Counts the backend's count() calls. */
function counting(backend: Backend): { backend: Backend; counts: () => number } {
  let n = 0;
  const count = backend.count.bind(backend);
  backend.count = (...args) => {
    n++;
    return count(...args);
  };
  return { backend, counts: () => n };
}

describe('paged list counts', () => {
  let dir = '';
  let store: Store;
  let countCalls: () => number;
  let pinned = 0;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'hk-page-counts-'));
    const c = counting(openBackend(`sqlite://${path.join(dir, 'state.db')}`));
    countCalls = c.counts;
    store = await Store.open({ backend: c.backend });
    for (let i = 0; i < 60; i++) await store.put({ key: b(`${PREFIX}${String(i).padStart(2, '0')}`), value: b(`v${i}`) });
    pinned = store.revision;
    // After the pin: the current revision has other keys than the pinned one.
    for (let i = 0; i < 60; i += 3) await store.deleteRange({ key: b(`${PREFIX}${String(i).padStart(2, '0')}`) });
    await store.put({ key: b(`${PREFIX}05x`), value: b('new') });
  });

  after(async () => {
    await store?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** The count a request must report: every key of its range at its revision, read afresh (no count call). */
  async function freshCount(req: RangeRequest): Promise<number> {
    return (await store.range({ ...req, limit: 0, keys_only: true })).kvs.length;
  }

  async function expectCount(req: RangeRequest, what: string): Promise<void> {
    const res = await store.range(req);
    const fresh = await freshCount(req);
    assert.equal(Number(res.count), fresh, `${what}: count`);
    assert.equal(res.more, fresh > res.kvs.length, `${what}: more`);
  }

  test('pages continued from the last key, with changing limits, count exactly and ask the backend once', async () => {
    for (const revision of [pinned, store.revision]) {
      const calls = countCalls();
      const limits = [7, 7, 3, 11, 7, 7, 7, 7];
      let key = b(PREFIX);
      let pages = 0;
      for (;;) {
        const req = { key, range_end: END, limit: limits[pages % limits.length]!, revision };
        const res = await store.range(req);
        const fresh = await freshCount(req);
        assert.equal(Number(res.count), fresh, `page ${pages} at ${revision}`);
        pages++;
        if (!res.more) break;
        key = after0(res.kvs.at(-1)!.key);
      }
      assert.ok(pages >= 5, `${pages} pages`);
      // The backend counts the first page only; at the current revision not even that: the count taken at the
      // pinned one is carried forward by the events since (mvcc/range-counts.ts).
      assert.equal(countCalls() - calls, revision === pinned ? 1 : 0, 'the backend counted the first page only');
    }
  });

  test('a count is not reused for another end, another revision, or a start outside what the page showed', async () => {
    const first = await store.range({ key: b(PREFIX), range_end: END, limit: 5, revision: pinned });
    const [k5, k6] = [first.kvs[4]!.key, first.kvs[5]?.key];
    assert.ok(k6 === undefined && first.more, 'the fifth key ends the page');
    const next = after0(k5);
    await expectCount({ key: next, range_end: b(`${PREFIX}20`), limit: 5, revision: pinned }, 'a shorter range_end');
    await expectCount({ key: next, range_end: Buffer.from([0]), limit: 5, revision: pinned }, 'to the end of the keyspace');
    await expectCount({ key: next, range_end: END, limit: 5 }, 'the current revision');
    await expectCount({ key: k5, range_end: END, limit: 5, revision: pinned }, 'starting at the last key returned');
    const sixth = (await store.range({ key: next, range_end: END, limit: 1, revision: pinned })).kvs[0]!.key;
    await expectCount({ key: sixth, range_end: END, limit: 5, revision: pinned }, 'starting at the next key');
    await expectCount({ key: after0(sixth), range_end: END, limit: 5, revision: pinned }, 'starting past the next key');
    await expectCount({ key: next, range_end: END, limit: 5, revision: pinned }, 'the continue key');
  });
});

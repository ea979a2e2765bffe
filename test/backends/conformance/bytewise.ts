/** Keys are bytes and every order is bytewise (Buffer.compare), whatever the database's collations say. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Suite } from './suite.js';

const x = (hex: string) => Buffer.from(hex, 'hex');
const u = (s: string) => Buffer.from(s, 'utf8');

/** Keys that trip text collations: NUL, 0xff, invalid UTF-8, multi-byte UTF-8, case, trailing spaces. */
const KEYS: Buffer[] = [
  x('00'),
  x('0000'),
  x('01'),
  u('A'),
  u('Z'),
  u('a'),
  x('6100'), // "a\0"
  x('610000'),
  u('a '), // trailing space: PAD SPACE collations would equal "a"
  u('a  '),
  u('a b'),
  x('61ff'),
  u('ab'),
  u('b'),
  u('é'), // c3 a9
  u('e'),
  u('日本'),
  u('日'),
  x('7f'),
  x('80'), // a lone continuation byte: invalid UTF-8
  x('c3'), // truncated UTF-8 sequence
  x('c328'),
  x('ed a0 80'.replace(/ /g, '')), // UTF-16 surrogate encoded: invalid UTF-8
  x('fe'),
  x('ff'),
  x('ffff'),
  x('ff00'),
];

const sorted = [...KEYS].sort(Buffer.compare);

export function bytewiseTests(suite: Suite): void {
  test('keys with NUL, 0xff, invalid and multi-byte UTF-8 sort bytewise and stay distinct', () =>
    suite.fresh(async (be, log) => {
      await log.commit(...KEYS.map((k) => ({ put: k, value: k })));
      const rev = log.revision;
      const all = await be.range({ start: Buffer.alloc(0), end: Buffer.alloc(0), revision: rev, limit: 0 });
      assert.deepEqual(
        all.map((r) => r.key.toString('hex')),
        sorted.map((k) => k.toString('hex')),
      );
      for (const r of all) assert.deepEqual(r.value, r.key, 'each key keeps its own value');
      assert.equal(await be.count(Buffer.alloc(0), Buffer.alloc(0), rev), KEYS.length);

      // Every key is found by a single-key get, and by a [key, key+"\0") range: no collation folds two keys into one.
      for (const k of KEYS) {
        assert.deepEqual((await be.range({ start: k, revision: rev, limit: 0 })).map((r) => r.key), [k]);
        const next = Buffer.concat([k, x('00')]);
        assert.deepEqual((await be.range({ start: k, end: next, revision: rev, limit: 0 })).map((r) => r.key), [k]);
      }

      // Sub-ranges with binary bounds agree with the reference.
      const bounds: [Buffer, Buffer][] = [
        [u('a'), u('b')],
        [x('6100'), x('6101')],
        [x('80'), Buffer.alloc(0)],
        [x('c3'), x('ff')],
        [u('a '), u('a!')],
        [x('00'), x('01')],
      ];
      for (const [start, end] of bounds) {
        const q = { start, end, revision: rev, limit: 0 };
        assert.deepEqual(await be.range(q), log.range(q), `range ${start.toString('hex')}..${end.toString('hex')}`);
        assert.equal(await be.count(start, end, rev), log.count(start, end, rev));
      }
    }));

  test('paging with the start key moving past the last key returned visits every key once, in order', () =>
    suite.fresh(async (be, log) => {
      await log.commit(...KEYS.map((k) => ({ put: k })));
      const seen: Buffer[] = [];
      let start = Buffer.alloc(0);
      for (;;) {
        const page = await be.range({ start, end: Buffer.alloc(0), revision: log.revision, limit: 4, keysOnly: true });
        seen.push(...page.map((r) => r.key));
        if (page.length < 4) break;
        start = Buffer.concat([page[page.length - 1]!.key, x('00')]);
      }
      assert.deepEqual(
        seen.map((k) => k.toString('hex')),
        sorted.map((k) => k.toString('hex')),
      );
    }));
}

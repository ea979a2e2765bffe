/** A child's History answer (server/layer-moves.ts `capHistory`): cut to whole keys within its byte budget, the first key always whole. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KeyRow } from '../../middleware/src/backends/backend.js';
import { HISTORY_BYTES, capHistory } from '../../middleware/src/server/layer-moves.js';

const row = (key: string, rev: number, bytes: number): KeyRow => ({
  key: Buffer.from(key),
  value: Buffer.alloc(bytes),
  modRevision: rev,
  sub: 0,
  createRevision: 1,
  prevRevision: 0,
  version: 1,
  lease: '0',
  deleted: false,
});
const keysOf = (rows: KeyRow[]) => rows.map((r) => `${r.key.toString()}@${r.modRevision}`);

test('a page within the budget is kept whole', () => {
  const rows = [row('a', 1, 10), row('a', 2, 10), row('b', 3, 10)];
  assert.deepEqual(keysOf(capHistory(rows)), keysOf(rows));
});

test('a page over the budget ends before the key that crosses it, never in the middle of a key', () => {
  const third = Math.floor(HISTORY_BYTES / 3);
  const rows = [row('a', 1, third), row('b', 2, third), row('b', 3, third), row('c', 4, 10)];
  assert.deepEqual(keysOf(capHistory(rows)), ['a@1']);
});

test('a first key larger than the budget comes alone, with all its rows', () => {
  const half = Math.floor(HISTORY_BYTES / 2);
  const rows = [row('a', 1, half), row('a', 2, half), row('a', 3, half), row('b', 4, 10)];
  assert.deepEqual(keysOf(capHistory(rows)), ['a@1', 'a@2', 'a@3']);
  assert.deepEqual(keysOf(capHistory(rows.slice(0, 3))), ['a@1', 'a@2', 'a@3']);
});

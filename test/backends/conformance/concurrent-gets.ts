/**
 * Many single-key reads at once (the database servers answer them together, several in one statement:
 * sql/get-batcher.ts): each must get exactly what it gets alone, whatever else is asked beside it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Suite } from './suite.js';

const b = (s: string) => Buffer.from(s, 'utf8');

export function concurrentGetTests(suite: Suite): void {
  test('concurrent gets of live, deleted, absent and the same keys at different revisions each get their own answer', () =>
    suite.fresh(async (be, log) => {
      const r1 = await log.commit({ put: 'g/a' }, { put: 'g/b' });
      const r2 = await log.commit({ put: 'g/a', value: 'second' }, { del: 'g/b' });
      const r3 = await log.commit({ put: 'g/c' });
      const asks: { key: string; revision: number }[] = [];
      for (let i = 0; i < 90; i++) asks.push({ key: ['g/a', 'g/b', 'g/c', 'g/none'][i % 4]!, revision: [r1, r2, r3][i % 3]! });
      const alone: string[] = [];
      for (const a of asks) alone.push(JSON.stringify(await be.range({ start: b(a.key), revision: a.revision, limit: 0 })));
      const together = await Promise.all(asks.map((a) => be.range({ start: b(a.key), revision: a.revision, limit: 0 })));
      assert.deepEqual(together.map((r) => JSON.stringify(r)), alone);
      // and what they answer is right: the model's view at each revision
      for (const [i, a] of asks.entries()) assert.deepEqual(together[i], log.range({ start: b(a.key), revision: a.revision, limit: 0 }), `${a.key}@${a.revision}`);
    }));
}

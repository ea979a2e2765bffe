/**
 * The rows of the bench and their budgets: the one place to tune how long `npm run bench` takes. Every row
 * stops at its op count or its time bound, whichever comes first; with three targets the row phase takes
 * about 3 x 60 s plus startup, and the 200k-key memory phase ~30-60 s: ~4-5 minutes in all, under the
 * 8-minute budget even on busy shared cores.
 */
import { casTxnRow, getRow, pagedListRow, putRow } from './kv-workloads.js';
import { watchRow } from './watch-workload.js';
import type { Workload } from './workload.js';

const SECONDS = 1_000;

export const ROWS: readonly Workload[] = [
  putRow(1, { maxOps: 20_000, maxMs: 4 * SECONDS }),
  putRow(16, { maxOps: 100_000, maxMs: 6 * SECONDS }),
  putRow(64, { maxOps: 100_000, maxMs: 6 * SECONDS }),
  getRow(1, { maxOps: 50_000, maxMs: 4 * SECONDS }),
  getRow(16, { maxOps: 200_000, maxMs: 6 * SECONDS }),
  casTxnRow(16, { maxOps: 100_000, maxMs: 6 * SECONDS }),
  pagedListRow(4, { maxOps: 20_000, maxMs: 6 * SECONDS }),
  watchRow({ watchers: 100, events: 200, intervalMs: 20, maxMs: 15 * SECONDS }),
];

export function rowNamed(name: string): Workload {
  const row = ROWS.find((r) => r.name === name);
  if (!row) throw new Error(`unknown row "${name}" (rows: ${ROWS.map((r) => r.name).join(', ')})`);
  return row;
}

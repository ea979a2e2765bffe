/**
 * A closed-loop load driver: `clients` workers each run one operation at a time until either the op budget
 * or the time budget is spent (both bounds always apply, so no row can run away on a fast or a slow server).
 */
import { summarize, type Summary } from './stats.js';

export interface LoopBounds {
  clients: number;
  maxOps: number;
  maxMs: number;
}

/** One operation of logical client `client`; `seq` is unique across all clients of the loop. */
export type Op = (client: number, seq: number) => Promise<void>;

/** Stop a row after this many failed operations: the numbers would mean nothing. */
const MAX_ERRORS = 50;

export async function closedLoop(bounds: LoopBounds, op: Op, record = true): Promise<Summary & { firstError?: string }> {
  const latencies: number[] = [];
  let issued = 0;
  let done = 0;
  let errors = 0;
  let firstError: string | undefined;
  const start = performance.now();
  const deadline = start + bounds.maxMs;
  const worker = async (client: number) => {
    while (issued < bounds.maxOps && errors < MAX_ERRORS && performance.now() < deadline) {
      const seq = issued++;
      const t0 = performance.now();
      try {
        await op(client, seq);
        if (record) latencies.push(performance.now() - t0);
        done++;
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: bounds.clients }, (_, i) => worker(i)));
  const seconds = (performance.now() - start) / 1000;
  return { ...summarize(latencies, done, seconds, errors), ...(firstError ? { firstError } : {}) };
}

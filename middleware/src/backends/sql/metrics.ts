/** Latency of backend operations, by dialect and operation, on the process registry. */
import { Histogram } from 'prom-client';
import { registry } from '../../metrics.js';
import type { DialectName } from './dialect.js';

const seconds = new Histogram({
  name: 'harikube_backend_operation_seconds',
  help: 'Time of SQL backend operations (reads, whole write transactions, compaction batches) by dialect and operation.',
  labelNames: ['dialect', 'op'] as const,
  buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  registers: [registry],
});

export type Operation = 'get' | 'range' | 'count' | 'changes' | 'write' | 'compact_batch' | 'meta' | 'leases' | 'max_revision' | 'migrate';

/** Runs `fn` and records how long it took (also when it throws). */
export async function timed<T>(dialect: DialectName, op: Operation, fn: () => Promise<T> | T): Promise<T> {
  const stop = seconds.startTimer({ dialect, op });
  try {
    return await fn();
  } finally {
    stop();
  }
}

/** Starts timing an operation that ends elsewhere (a write transaction from begin to commit or rollback). */
export function startTimer(dialect: DialectName, op: Operation): () => void {
  return seconds.startTimer({ dialect, op });
}

/**
 * What a bench row is: a workload prepared against one server (data loaded, connections up), warmed up,
 * then measured once. The runner samples CPU around measure() only, so setup never counts.
 */
import { ConnectionPool } from './client.js';
import { closedLoop, type LoopBounds, type Op } from './loop.js';
import type { Summary } from './stats.js';

export interface RowResult extends Summary {
  firstError?: string;
}

export interface PreparedRow {
  warmup(): Promise<void>;
  measure(): Promise<RowResult>;
  close(): Promise<void> | void;
}

export interface Workload {
  /** Row name, e.g. "put-64"; also what --profile and --rows take. */
  readonly name: string;
  /** One line for the report. */
  readonly what: string;
  /** Latency rows compare p50/p99 as well as throughput. */
  readonly latencyRow: boolean;
  prepare(address: string, prefix: string): Promise<PreparedRow>;
}

/** Warmup of closed-loop rows: long enough for JIT and connection windows, short against the budget. */
const WARMUP: Pick<LoopBounds, 'maxMs'> = { maxMs: 700 };

export interface ClosedLoopSpec {
  name: string;
  what: string;
  latencyRow?: boolean;
  bounds: LoopBounds;
  /** Loads data and returns the operation; `phase` keeps warmup and measured keys apart where it matters. */
  setup(pool: ConnectionPool, prefix: string): Promise<(phase: 'warmup' | 'measure') => Op>;
}

/** A row driven by `closedLoop` over a pool of min(clients, MAX_CONNECTIONS) connections. */
export function closedLoopRow(spec: ClosedLoopSpec): Workload {
  return {
    name: spec.name,
    what: spec.what,
    latencyRow: spec.latencyRow ?? false,
    async prepare(address, prefix) {
      const pool = ConnectionPool.forClients(address, spec.bounds.clients);
      try {
        await pool.ready();
        const opFor = await spec.setup(pool, prefix);
        return {
          warmup: async () => {
            const r = await closedLoop({ ...spec.bounds, ...WARMUP, maxOps: Math.ceil(spec.bounds.maxOps / 10) }, opFor('warmup'), false);
            if (r.errors) throw new Error(`${spec.name} warmup: ${r.errors} errors, first: ${r.firstError}`);
          },
          measure: () => closedLoop(spec.bounds, opFor('measure')),
          close: () => pool.close(),
        };
      } catch (err) {
        pool.close();
        throw err;
      }
    },
  };
}

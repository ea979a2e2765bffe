/**
 * Middleware memory with a realistic amount of data: 200k keys of 1 KiB stored through the etcd API
 * (multi-put Txns of 128 puts, several in flight, over a few connections), then the server's RSS read
 * from /proc/<pid>/status right after the load and again after a short idle period (GC and SQLite's
 * page cache settle). Peak RSS (VmHWM) is reported too.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionPool } from './client.js';
import { loadKeys } from './data.js';
import { memoryBreakdown, type MemoryBreakdown } from './metrics.js';
import { rowPrefix } from './measure.js';
import { statusBytes } from './procfs.js';
import { startTarget, type MiddlewareLaunch, type TargetName } from './servers.js';

export interface MemoryResult {
  target: TargetName;
  keys: number;
  valueBytes: number;
  /** Right after start, before any data: the fixed cost (node, tsx, gRPC, two SQLite connections). */
  rssIdleBytes: number;
  loadSeconds: number;
  keysPerSec: number;
  rssAfterLoadBytes: number;
  rssSettledBytes: number;
  peakRssBytes: number;
  /** Node's share of the settled RSS, from /metrics (read after the settled RSS). */
  node?: MemoryBreakdown;
}

export interface MemoryOptions {
  keys?: number;
  valueBytes?: number;
  /** Bound on the load; the phase fails beyond it. */
  timeoutMs?: number;
  settleMs?: number;
  launch?: MiddlewareLaunch;
  log?: (line: string) => void;
}

export async function measureMemory(target: TargetName = 'mw-sqlite', opts: MemoryOptions = {}): Promise<MemoryResult> {
  const keys = opts.keys ?? 200_000;
  const valueBytes = opts.valueBytes ?? 1024;
  const server = await startTarget(target, opts.launch);
  const pool = new ConnectionPool(server.address, 4);
  try {
    await pool.ready();
    const rssIdleBytes = statusBytes(server.pid, 'VmRSS');
    const value = randomBytes(valueBytes);
    const t0 = performance.now();
    let reported = 0;
    await loadKeys(pool, rowPrefix('memory'), keys, value, {
      concurrency: 8,
      timeoutMs: opts.timeoutMs ?? 240_000,
      progress: (stored) => {
        if (stored - reported >= 50_000) {
          reported = stored;
          opts.log?.(`  memory: ${stored} keys stored (${Math.round(stored / ((performance.now() - t0) / 1000))} keys/s)`);
        }
      },
    });
    const loadSeconds = (performance.now() - t0) / 1000;
    const rssAfterLoadBytes = statusBytes(server.pid, 'VmRSS');
    await sleep(opts.settleMs ?? 3_000);
    const rssSettledBytes = statusBytes(server.pid, 'VmRSS');
    const node = server.metricsUrl ? await memoryBreakdown(server.metricsUrl) : undefined;
    return {
      target,
      keys,
      valueBytes,
      rssIdleBytes,
      loadSeconds,
      keysPerSec: keys / loadSeconds,
      rssAfterLoadBytes,
      rssSettledBytes,
      peakRssBytes: statusBytes(server.pid, 'VmHWM'),
      ...(node ? { node } : {}),
    };
  } finally {
    pool.close();
    await server.stop();
  }
}

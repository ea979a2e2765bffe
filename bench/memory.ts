/**
 * Server memory with a realistic amount of data: keys of 1 KiB stored through the etcd API by the Go load
 * generator (multi-put Txns of 128 puts, several in flight; single Puts on kine, which refuses multi-put
 * Txns) in steps up to each size (10k, 200k, and 1M with --memory-1m), the server's RSS read from
 * /proc/<pid>/status after each step has settled. Peak RSS (VmHWM) is reported too.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { runLoadgen } from './loadgen.js';
import { memoryBreakdown, type MemoryBreakdown } from './metrics.js';
import { rowPrefix } from './measure.js';
import { statusBytes } from './procfs.js';
import type { MiddlewareLaunch, TargetName } from './servers.js';
import { startTarget } from './targets.js';

export interface MemoryStep {
  /** Keys stored in all after this step. */
  keys: number;
  loadSeconds: number;
  keysPerSec: number;
  rssAfterLoadBytes: number;
  rssSettledBytes: number;
  peakRssBytes: number;
  /** Load generator CPU seconds for the step. */
  loadgenCpuSeconds: number;
  /** Middleware only: Node's share of the settled RSS, from /metrics. */
  node?: MemoryBreakdown;
}

export interface MemoryResult {
  target: TargetName;
  valueBytes: number;
  /** Right after start, before any data: the fixed cost. */
  rssIdleBytes: number;
  steps: MemoryStep[];
  error?: string;
}

export interface MemoryOptions {
  sizes: number[];
  valueBytes?: number;
  settleMs?: number;
  launch?: MiddlewareLaunch;
  log?: (line: string) => void;
}

/** Bound on one load step: generous, the 1M step on a busy machine takes minutes. */
const STEP_TIMEOUT_MS = 15 * 60_000;

export async function measureMemory(target: TargetName, opts: MemoryOptions): Promise<MemoryResult> {
  const valueBytes = opts.valueBytes ?? 1024;
  const server = await startTarget(target, opts.launch);
  const result: MemoryResult = { target, valueBytes, rssIdleBytes: statusBytes(server.pid, 'VmRSS'), steps: [] };
  try {
    let stored = 0;
    for (const size of [...opts.sizes].sort((a, b) => a - b)) {
      const count = size - stored;
      if (count <= 0) continue;
      const r = await runLoadgen(
        ['--row', 'load', '--endpoint', server.address, '--prefix', rowPrefix(`memory-${size}`), '--keys', String(count),
          '--value-size', String(valueBytes), '--clients', '8', '--setup-timeout', `${STEP_TIMEOUT_MS / 1000}s`],
        STEP_TIMEOUT_MS + 60_000,
      );
      if (r.errors) throw new Error(`loading ${count} keys: ${r.firstError}`);
      stored = size;
      const rssAfterLoadBytes = statusBytes(server.pid, 'VmRSS');
      await sleep(opts.settleMs ?? 3_000);
      const step: MemoryStep = {
        keys: size,
        loadSeconds: r.seconds,
        keysPerSec: count / r.seconds,
        rssAfterLoadBytes,
        rssSettledBytes: statusBytes(server.pid, 'VmRSS'),
        peakRssBytes: statusBytes(server.pid, 'VmHWM'),
        loadgenCpuSeconds: r.cpuSeconds,
      };
      const node = server.metricsUrl ? await memoryBreakdown(server.metricsUrl) : undefined;
      if (node) step.node = node;
      result.steps.push(step);
      opts.log?.(
        `  memory ${target}: ${size} keys (${Math.round(step.keysPerSec)} keys/s), RSS settled ${(step.rssSettledBytes / 2 ** 20).toFixed(1)} MiB, peak ${(step.peakRssBytes / 2 ** 20).toFixed(1)} MiB`,
      );
    }
  } catch (err) {
    result.error = (err as Error).message;
    opts.log?.(`  memory ${target}: ${result.error}`);
  } finally {
    await server.stop();
  }
  return result;
}

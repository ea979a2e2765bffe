/**
 * Drives one row against one server with the Go load generator (tools/loadgen, on etcd's clientv3): a
 * separate process, so the bench's own Node process is idle while a row runs and the generator's CPU is
 * reported on its own line. loadgen prints "measuring" right before its measured phase and one JSON line
 * right after it; the server's CPU (and the middleware's write counters) are sampled at those two moments,
 * so setup and warm-up never count.
 */
import path from 'node:path';
import { runProcess } from '../test/support/run-process.js';
import { toolDir } from '../test/support/tools.js';
import { onCleanup } from './cleanup.js';

/** What one measured phase printed (tools/loadgen/loop.go's Result); null latencies mean "no samples". */
export interface LoadgenResult {
  ops: number;
  errors: number;
  firstError?: string;
  seconds: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  /** The generator's own user+system CPU seconds over the measured phase. */
  cpuSeconds: number;
  clientCores: number;
}

/** The loadgen binary, or an error saying how to build it. */
export function loadgenBin(): string {
  const dir = toolDir('loadgen');
  if (!dir) throw new Error('the Go load generator is not built: run tools/build.sh loadgen (needs Go 1.26 and the Go module proxy)');
  return path.join(dir, 'loadgen');
}

export interface LoadgenHooks {
  /** At the "measuring" marker (synchronously: sample CPU here). */
  onStart?: () => void;
  /** When the result line arrives, before the process exits. */
  onEnd?: () => void;
  /**
   * At spawn, with a function that ends the measured phase of a closed-loop row (put, get, txn, list) early
   * (SIGUSR1, tools/loadgen/main.go); the result line comes as usual. For phases as long as something else.
   */
  onSpawn?: (endMeasurement: () => void) => void;
}

const toNumber = (v: unknown): number => (typeof v === 'number' ? v : NaN);

/**
 * Runs `loadgen args...` to completion (killed after `timeoutMs`) and returns its result line. A loadgen that
 * exits non-zero or without a result fails with its stderr.
 */
export async function runLoadgen(args: string[], timeoutMs: number, hooks: LoadgenHooks = {}): Promise<LoadgenResult> {
  const label = `loadgen ${args.join(' ')}`;
  let result: LoadgenResult | undefined;
  let kill: (() => Promise<void>) | undefined;
  const { code, stderr } = await runProcess(loadgenBin(), args, {
    label,
    timeoutMs,
    stderrTailChars: 4_000,
    onSpawn: (child) => {
      kill = onCleanup(`kill loadgen ${child.pid}`, () => void child.kill('SIGKILL'));
      hooks.onSpawn?.(() => void child.kill('SIGUSR1'));
    },
    onLine: (line) => {
      if (line === 'measuring') return hooks.onStart?.();
      if (!line.startsWith('{')) return;
      hooks.onEnd?.();
      const raw = JSON.parse(line) as Record<string, unknown>;
      result = {
        ...(raw as unknown as LoadgenResult),
        p50Ms: toNumber(raw.p50Ms),
        p99Ms: toNumber(raw.p99Ms),
        maxMs: toNumber(raw.maxMs),
        meanMs: toNumber(raw.meanMs),
      };
    },
  }).finally(() => void kill?.());
  if (result && code === 0) return result;
  if (result) return { ...result, errors: Math.max(1, result.errors), firstError: result.firstError ?? stderr.trim() };
  throw new Error(`${label} exited ${code} without a result:\n${stderr.trim()}`);
}

/**
 * Drives one row against one server with the Go load generator (tools/loadgen, on etcd's clientv3): a
 * separate process, so the bench's own Node process is idle while a row runs and the generator's CPU is
 * reported on its own line. loadgen prints "measuring" right before its measured phase and one JSON line
 * right after it; the server's CPU (and the middleware's write counters) are sampled at those two moments,
 * so setup and warm-up never count.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
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
}

const toNumber = (v: unknown): number => (typeof v === 'number' ? v : NaN);

/**
 * Runs `loadgen args...` to completion (killed after `timeoutMs`) and returns its result line. A loadgen that
 * exits non-zero or without a result fails with its stderr.
 */
export function runLoadgen(args: string[], timeoutMs: number, hooks: LoadgenHooks = {}): Promise<LoadgenResult> {
  const child = spawn(loadgenBin(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const kill = onCleanup(`kill loadgen ${child.pid}`, () => void child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4_000)));
  let result: LoadgenResult | undefined;
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
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
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`loadgen ${args.join(' ')}: still running after ${timeoutMs / 1000} s, killed\n${stderr}`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      void kill();
      if (result && code === 0) resolve(result);
      else if (result) resolve({ ...result, errors: Math.max(1, result.errors), firstError: result.firstError ?? stderr.trim() });
      else reject(new Error(`loadgen ${args.join(' ')} exited ${code} without a result:\n${stderr.trim()}`));
    });
  });
}

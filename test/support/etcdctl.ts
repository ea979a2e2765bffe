/**
 * Debian's etcdctl (v3 API) as a test client. Endpoints are given as host:port without a scheme: etcdctl
 * 3.4 would otherwise send the scheme in :authority for some commands, which Node's http2 rejects.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { ETCDCTL_BIN } from './env.js';
import { runProcess } from './run-process.js';

export interface CtlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const DEFAULT_TIMEOUT_MS = 20_000;

function ctlEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ETCDCTL_API: '3' };
  // A developer's ETCDCTL_* settings must not leak into the tests.
  for (const k of Object.keys(env)) if (k.startsWith('ETCDCTL_') && k !== 'ETCDCTL_API') delete env[k];
  return env;
}

function ctlArgs(address: string, args: string[]): string[] {
  return [`--endpoints=${address}`, '--dial-timeout=5s', '--command-timeout=10s', ...args];
}

/** Runs one etcdctl command to completion (killed after `timeoutMs`). */
export function etcdctl(address: string, args: string[], { input, timeoutMs = DEFAULT_TIMEOUT_MS }: { input?: string; timeoutMs?: number } = {}): Promise<CtlResult> {
  return runProcess(ETCDCTL_BIN, ctlArgs(address, args), { label: `etcdctl ${args.join(' ')}`, timeoutMs, env: ctlEnv(), input });
}

/** Runs a command that must succeed; returns its stdout. */
export async function etcdctlOk(address: string, args: string[], options?: { input?: string }): Promise<string> {
  const res = await etcdctl(address, args, options);
  if (res.code !== 0) throw new Error(`etcdctl ${args.join(' ')} exited ${res.code}\nstdout: ${res.stdout}\nstderr: ${res.stderr}`);
  return res.stdout;
}

/**
 * Parses etcdctl's `-w json` output. It prints uint64/int64 fields (IDs, revisions) as bare JSON numbers,
 * which JSON.parse would round above 2^53, so long integers become decimal strings first.
 */
export function parseCtlJson<T = unknown>(text: string): T {
  return JSON.parse(text.replace(/([:[,]\s*)(-?\d{16,})(?=\s*[,}\]])/g, '$1"$2"')) as T;
}

export async function etcdctlJson<T = unknown>(address: string, args: string[]): Promise<T> {
  return parseCtlJson<T>(await etcdctlOk(address, [...args, '-w', 'json']));
}

export const fromBase64 = (s: string | undefined): string => Buffer.from(s ?? '', 'base64').toString('utf8');

/** A running `etcdctl watch ...`: collects stdout lines; stop() kills it. */
export class CtlWatch {
  readonly lines: string[] = [];
  private partial = '';
  private stderr = '';
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly wakers = new Set<() => void>();
  private exited = false;

  constructor(address: string, args: string[]) {
    this.child = spawn(ETCDCTL_BIN, ctlArgs(address, ['watch', ...args]), { env: ctlEnv() });
    this.child.stdout.on('data', (d: Buffer) => {
      const parts = (this.partial + d.toString('utf8')).split('\n');
      this.partial = parts.pop()!;
      this.lines.push(...parts);
      for (const w of [...this.wakers]) w();
    });
    this.child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString('utf8')));
    this.child.once('exit', () => {
      this.exited = true;
      for (const w of [...this.wakers]) w();
    });
  }

  /** Waits (bounded) until at least `count` complete lines arrived; returns them. */
  waitForLines(count: number, timeoutMs = 15_000): Promise<string[]> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.lines.length >= count) {
          done();
          resolve(this.lines.slice(0, count));
        } else if (this.exited) {
          done();
          reject(new Error(`etcdctl watch exited after ${JSON.stringify(this.lines)}; stderr: ${this.stderr}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${count} watch lines; got ${JSON.stringify(this.lines)}; stderr: ${this.stderr}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(check);
      };
      this.wakers.add(check);
      check();
    });
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const exit = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGKILL');
    await exit;
  }
}

/**
 * A server process started by a test: keeps the tail of its output for error messages and stops it within a
 * bound (SIGTERM, then SIGKILL), so a hung server never hangs the suite.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { waitUntil } from './wait.js';

const TAIL_CHARS = 8_000;

export class ServerProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private output = '';
  private hasExited = false;

  constructor(
    readonly label: string,
    command: string,
    args: string[],
    options: SpawnOptions = {},
  ) {
    this.child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString('utf8')).slice(-TAIL_CHARS);
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => {
      this.child.once('error', (err) => {
        this.output += `\n[spawn error] ${err.message}`;
        this.hasExited = true;
        resolve({ code: null, signal: null });
      });
      this.child.once('exit', (code, signal) => {
        this.hasExited = true;
        resolve({ code, signal });
      });
    });
  }

  get running(): boolean {
    return !this.hasExited;
  }

  /** The last few KiB of stdout+stderr, for error messages. */
  tail(): string {
    return this.output;
  }

  /** An error that carries the process's recent output. */
  failure(message: string): Error {
    return new Error(`${this.label}: ${message}\n--- ${this.label} output (tail) ---\n${this.tail()}`);
  }

  /**
   * Polls `ready` until it answers true. A process that exits meanwhile ends the wait at once (instead of being
   * polled until the bound); then, or after the bound, the process is stopped and the error carries its output.
   */
  async waitReady(what: string, ready: () => Promise<boolean>, bound: { timeoutMs: number; intervalMs: number }): Promise<void> {
    try {
      const outcome = await waitUntil(what, async () => (!this.running ? 'exited' : (await ready()) ? 'ready' : undefined), bound);
      if (outcome === 'exited') throw new Error('exited before becoming ready');
    } catch (err) {
      await this.stop();
      throw this.failure(err instanceof Error ? err.message : String(err));
    }
  }

  /** Graceful stop: SIGTERM, then SIGKILL if it is still alive after `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Crash: SIGKILL, nothing flushed. */
  async kill9(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

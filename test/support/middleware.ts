/**
 * The HariKube middleware as a real process (`cli.ts serve`), started the way an operator would start it,
 * on free loopback ports. It can be stopped, crashed (kill -9) and restarted on the same data and ports.
 */
import { CLI_ARGS, REPO_ROOT } from './cli.js';
import { freePort } from './env.js';
import { ServerProcess } from './child.js';

export { REPO_ROOT };
/** Generous: tsx compiles the server on first start, and 2 shared cores may be busy. */
const READY_TIMEOUT_MS = 60_000;

export interface MiddlewareOptions {
  /** Storage endpoint: sqlite:///abs/path, postgres://..., mysql://user@tcp(host:port)/db. */
  endpoint: string;
  /** --watch-progress-notify-interval, e.g. '1s'. */
  progressNotifyInterval?: string;
  /** --compact-interval; contract tests pass '0' so only explicit Compact RPCs compact. */
  compactInterval?: string;
  /** --emulated-etcd-version. */
  emulatedEtcdVersion?: string;
  extraArgs?: string[];
  /** What start() and restart() wait for: /readyz 200 (default) or only /healthz 200 (a standby replica). */
  waitFor?: 'ready' | 'live';
}

export class Middleware {
  private proc: ServerProcess | undefined;

  private constructor(
    readonly options: MiddlewareOptions,
    readonly port: number,
    readonly metricsPort: number,
  ) {}

  /** Starts the middleware and waits (bounded) for /readyz to answer 200. */
  static async start(options: MiddlewareOptions): Promise<Middleware> {
    const m = new Middleware(options, await freePort(), await freePort());
    await m.launch();
    return m;
  }

  /** host:port of the etcd API, no scheme. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get metricsAddress(): string {
    return `127.0.0.1:${this.metricsPort}`;
  }

  get process(): ServerProcess | undefined {
    return this.proc;
  }

  /** True when /readyz answers 200 now (a leader serving; a standby or a stopped process answers otherwise). */
  async isReady(): Promise<boolean> {
    try {
      const res = await fetch(`http://${this.metricsAddress}/readyz`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      return res.status === 200;
    } catch {
      return false;
    }
  }

  async stop(): Promise<void> {
    await this.proc?.stop();
  }

  /** Crash without any chance to flush. */
  async kill9(): Promise<void> {
    await this.proc?.kill9();
  }

  /** Starts again on the same data and ports (after stop() or kill9()). */
  async restart(): Promise<void> {
    if (this.proc?.running) throw new Error('restart() of a running middleware: stop or kill it first');
    await this.launch();
  }

  private args(): string[] {
    const o = this.options;
    const args = [
      ...CLI_ARGS, 'serve',
      '--listen-address', this.address,
      '--endpoint', o.endpoint,
      '--metrics-bind-address', this.metricsAddress,
      '--log-format', 'json',
    ];
    if (o.progressNotifyInterval) args.push('--watch-progress-notify-interval', o.progressNotifyInterval);
    if (o.compactInterval !== undefined) args.push('--compact-interval', o.compactInterval);
    if (o.emulatedEtcdVersion) args.push('--emulated-etcd-version', o.emulatedEtcdVersion);
    return [...args, ...(o.extraArgs ?? [])];
  }

  private async launch(): Promise<void> {
    const proc = new ServerProcess(`middleware ${this.address} (${this.options.endpoint})`, process.execPath, this.args(), {
      cwd: REPO_ROOT,
    });
    this.proc = proc;
    const readyz = `http://${this.metricsAddress}/${this.options.waitFor === 'live' ? 'healthz' : 'readyz'}`;
    await proc.waitReady(
      `${readyz} to answer 200`,
      async () => {
        const res = await fetch(readyz, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer();
        return res.status === 200;
      },
      { timeoutMs: READY_TIMEOUT_MS, intervalMs: 100 },
    );
  }
}

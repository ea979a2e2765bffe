/**
 * A real single-member etcd (the reference) on free loopback ports, its data in a temp dir. It can be
 * crashed (kill -9) and restarted on the same data and ports; destroy() stops it and removes the data.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ETCD_BIN, freePort } from './env.js';
import { ServerProcess } from './child.js';

export interface EtcdOptions {
  /** Passed as --experimental-watch-progress-notify-interval (e.g. '1s'). */
  progressNotifyInterval?: string;
}

const READY_TIMEOUT_MS = 30_000;

async function healthy(clientUrl: string): Promise<true | undefined> {
  const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(2_000) });
  const body = (await res.json()) as { health?: string };
  return res.ok && body.health === 'true' ? true : undefined;
}

export class Etcd {
  private proc: ServerProcess | undefined;

  private constructor(
    readonly options: EtcdOptions,
    readonly dataDir: string,
    readonly clientPort: number,
    readonly peerPort: number,
  ) {}

  /** Starts etcd on a fresh data dir and waits (bounded) until /health says true. */
  static async start(options: EtcdOptions = {}): Promise<Etcd> {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'hk-etcd-'));
    const etcd = new Etcd(options, dataDir, await freePort(), await freePort());
    try {
      await etcd.launch();
    } catch (err) {
      await rm(dataDir, { recursive: true, force: true });
      throw err;
    }
    return etcd;
  }

  /** host:port of the client endpoint, no scheme. */
  get address(): string {
    return `127.0.0.1:${this.clientPort}`;
  }

  get clientUrl(): string {
    return `http://${this.address}`;
  }

  async stop(): Promise<void> {
    await this.proc?.stop();
  }

  async kill9(): Promise<void> {
    await this.proc?.kill9();
  }

  /** Starts again on the same data dir and ports (after stop() or kill9()). */
  async restart(): Promise<void> {
    if (this.proc?.running) throw new Error('restart() of a running etcd: stop or kill it first');
    await this.launch();
  }

  /** Stops etcd and removes its data dir. */
  async destroy(): Promise<void> {
    await this.stop();
    await rm(this.dataDir, { recursive: true, force: true });
  }

  private args(): string[] {
    const peerUrl = `http://127.0.0.1:${this.peerPort}`;
    const args = [
      '--name', 't',
      '--data-dir', this.dataDir,
      '--listen-client-urls', this.clientUrl,
      '--advertise-client-urls', this.clientUrl,
      '--listen-peer-urls', peerUrl,
      '--initial-advertise-peer-urls', peerUrl,
      '--initial-cluster', `t=${peerUrl}`,
      '--log-level', 'warn',
    ];
    if (this.options.progressNotifyInterval) {
      args.push('--experimental-watch-progress-notify-interval', this.options.progressNotifyInterval);
    }
    return args;
  }

  private async launch(): Promise<void> {
    const proc = new ServerProcess(`etcd ${this.clientUrl}`, ETCD_BIN, this.args());
    this.proc = proc;
    await proc.waitReady(`etcd health at ${this.clientUrl}`, async () => (await healthy(this.clientUrl)) === true, {
      timeoutMs: READY_TIMEOUT_MS,
      intervalMs: 100,
    });
  }
}

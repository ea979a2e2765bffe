/**
 * A TCP proxy on loopback that can go silent: `freeze()` stops passing bytes either way without closing
 * anything (a hung database server, or a network that drops packets), `thaw()` delivers what waited and
 * passes bytes again. Connections opened while frozen are accepted and stay silent too. `delay(ms)` holds
 * every answer of the server that long (a distant or overloaded database): each round trip costs `ms`.
 */
import net from 'node:net';

interface Pair {
  client: net.Socket;
  server: net.Socket;
  toServer: Buffer[];
  /** Answers of the server, each with the time it may be passed on. */
  toClient: { data: Buffer; due: number }[];
  timer?: NodeJS.Timeout;
}

export class TcpProxy {
  private frozen = false;
  private delayMs = 0;
  private readonly pairs = new Set<Pair>();

  private constructor(
    private readonly listener: net.Server,
    readonly port: number,
  ) {}

  /** Listens on a free loopback port and forwards to `target`. */
  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined;
    const listener = net.createServer((client) => proxy!.accept(client, target));
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(0, '127.0.0.1', () => resolve());
    });
    proxy = new TcpProxy(listener, (listener.address() as net.AddressInfo).port);
    return proxy;
  }

  freeze(): void {
    this.frozen = true;
  }

  thaw(): void {
    this.frozen = false;
    for (const p of this.pairs) this.flush(p);
  }

  /** Holds each answer from the server `ms` before passing it on, from now on (0: none). Answers keep their order. */
  delay(ms: number): void {
    this.delayMs = ms;
  }

  async close(): Promise<void> {
    for (const p of this.pairs) {
      clearTimeout(p.timer);
      p.client.destroy();
      p.server.destroy();
    }
    await new Promise<void>((resolve) => this.listener.close(() => resolve()));
  }

  private accept(client: net.Socket, target: { host: string; port: number }): void {
    const server = net.connect(target.port, target.host);
    const pair: Pair = { client, server, toServer: [], toClient: [] };
    this.pairs.add(pair);
    client.on('data', (d) => (pair.toServer.push(d), this.flush(pair)));
    server.on('data', (d) => (pair.toClient.push({ data: d, due: Date.now() + this.delayMs }), this.flush(pair)));
    const drop = () => {
      this.pairs.delete(pair);
      clearTimeout(pair.timer);
      client.destroy();
      server.destroy();
    };
    for (const s of [client, server]) {
      s.on('error', drop);
      s.on('close', drop);
    }
  }

  private flush(p: Pair): void {
    if (this.frozen) return;
    for (const d of p.toServer.splice(0)) p.server.write(d);
    const now = Date.now();
    while (p.toClient.length > 0 && p.toClient[0]!.due <= now) p.client.write(p.toClient.shift()!.data);
    if (p.toClient.length > 0 && !p.timer) {
      p.timer = setTimeout(() => {
        p.timer = undefined;
        this.flush(p);
      }, p.toClient[0]!.due - now);
    }
  }
}

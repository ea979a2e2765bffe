/**
 * A TCP proxy on loopback that can go silent: `freeze()` stops passing bytes either way without closing
 * anything (a hung database server, or a network that drops packets), `thaw()` delivers what waited and
 * passes bytes again. Connections opened while frozen are accepted and stay silent too.
 */
import net from 'node:net';

interface Pair {
  client: net.Socket;
  server: net.Socket;
  toServer: Buffer[];
  toClient: Buffer[];
}

export class TcpProxy {
  private frozen = false;
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

  async close(): Promise<void> {
    for (const p of this.pairs) {
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
    server.on('data', (d) => (pair.toClient.push(d), this.flush(pair)));
    const drop = () => {
      this.pairs.delete(pair);
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
    for (const d of p.toClient.splice(0)) p.client.write(d);
  }
}

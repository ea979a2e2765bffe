/**
 * The one client both etcd and the middleware are driven with: raw gRPC on etcd's own rpc.proto (loaded
 * from the etcd3 package, as the tests do), so any difference in a row comes from the server.
 *
 * Connections: a pool of a few real HTTP/2 connections, with the bench's logical clients spread over them
 * round-robin. grpc-js multiplexes every call on a channel over one connection, and channels with the same
 * target and options even share that connection through the global subchannel pool; so "one channel per
 * client" would silently be one connection. Each pool channel therefore gets its own local subchannel
 * pool. A few connections rather than one per client: that is how kube-apiserver talks to etcd (a handful
 * of multiplexed client connections, not one per request stream), and 64 connections would spend the
 * single-threaded bench client's CPU on HTTP/2 session bookkeeping instead of requests.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type * as T from '../test/support/etcd-types.js';

/** The same decoding as the test client: int64 as decimal strings, enums as names, defaults filled in. */
const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
/** A wedged server fails the row instead of hanging the bench. */
const DEADLINE_MS = 15_000;
/** Most logical clients share this many connections (see the header comment). */
export const MAX_CONNECTIONS = 4;

type Ctor = grpc.ServiceClientConstructor;
let services: { KV: Ctor; Watch: Ctor } | undefined;

function load(): { KV: Ctor; Watch: Ctor } {
  if (services) return services;
  const require = createRequire(import.meta.url);
  const protoDir = path.join(path.dirname(require.resolve('etcd3')), '..', 'proto');
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(path.join(protoDir, 'rpc.proto'), LOADER_OPTIONS)) as unknown as {
    etcdserverpb: { KV: Ctor; Watch: Ctor };
  };
  services = { KV: pkg.etcdserverpb.KV, Watch: pkg.etcdserverpb.Watch };
  return services;
}

type Unary = (req: unknown, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

/** One HTTP/2 connection with the KV and Watch services on it. */
export class Connection {
  private readonly kv: grpc.Client;
  private readonly watchClient: grpc.Client;
  private readonly methods: Record<'Range' | 'Put' | 'Txn', Unary>;

  constructor(address: string) {
    const s = load();
    const options: grpc.ClientOptions = {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
    };
    this.kv = new s.KV(address, grpc.credentials.createInsecure(), options);
    // the watch service rides on the KV client's channel: same connection, as in etcd's clientv3
    this.watchClient = new s.Watch(address, grpc.credentials.createInsecure(), { channelOverride: this.kv.getChannel() });
    const kv = this.kv as unknown as Record<string, Unary>;
    this.methods = { Range: kv.Range!.bind(this.kv), Put: kv.Put!.bind(this.kv), Txn: kv.Txn!.bind(this.kv) };
  }

  private call<Res>(method: 'Range' | 'Put' | 'Txn', req: unknown): Promise<Res> {
    return new Promise((resolve, reject) =>
      this.methods[method](req, { deadline: Date.now() + DEADLINE_MS }, (err, res) => (err ? reject(err) : resolve(res as Res))),
    );
  }

  range(req: T.RangeRequest): Promise<T.RangeResponse> {
    return this.call('Range', req);
  }
  put(req: T.PutRequest): Promise<T.PutResponse> {
    return this.call('Put', req);
  }
  txn(req: T.TxnRequest): Promise<T.TxnResponse> {
    return this.call('Txn', req);
  }

  /** A raw bidirectional Watch stream on this connection. */
  watch(): grpc.ClientDuplexStream<T.WatchRequest, T.WatchResponse> {
    return (this.watchClient as unknown as { Watch(): grpc.ClientDuplexStream<T.WatchRequest, T.WatchResponse> }).Watch();
  }

  /** Waits (bounded) until the connection is up, so connection setup is never inside a measurement. */
  ready(timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) =>
      this.kv.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve())),
    );
  }

  close(): void {
    this.watchClient.close();
    this.kv.close();
  }
}

/** `size` connections to one server; logical client i uses connection i mod size. */
export class ConnectionPool {
  private readonly conns: Connection[];

  constructor(address: string, size: number) {
    this.conns = Array.from({ length: Math.max(1, size) }, () => new Connection(address));
  }

  /** Connections for `clients` logical clients: min(clients, MAX_CONNECTIONS). */
  static forClients(address: string, clients: number): ConnectionPool {
    return new ConnectionPool(address, Math.min(clients, MAX_CONNECTIONS));
  }

  get size(): number {
    return this.conns.length;
  }

  of(client: number): Connection {
    return this.conns[client % this.conns.length]!;
  }

  async ready(): Promise<void> {
    await Promise.all(this.conns.map((c) => c.ready()));
  }

  close(): void {
    for (const c of this.conns) c.close();
  }
}

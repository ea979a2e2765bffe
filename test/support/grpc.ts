/**
 * A raw etcd v3 gRPC client for contract tests: the services of etcd's rpc.proto (loaded from the etcd3
 * package, not copied) plus grpc.health.v1, with int64s kept as decimal strings. Raw on purpose: the tests
 * must see exactly what a server answers, headers, defaults and error codes included.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type * as T from './etcd-types.js';
import { WatchStream } from './watch-stream.js';
import { KeepAliveStream } from './keepalive-stream.js';

const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** Deadline of every unary call unless a test says otherwise: a wedged server fails the test, never hangs it. */
const DEFAULT_DEADLINE_MS = 15_000;

function etcdProtoDir(): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve('etcd3')), '..', 'proto');
}

/** grpc.health.v1, tiny enough to declare here (grpc-js does not ship it). */
const HEALTH_PROTO = {
  nested: {
    grpc: {
      nested: {
        health: {
          nested: {
            v1: {
              nested: {
                HealthCheckRequest: { fields: { service: { type: 'string', id: 1 } } },
                HealthCheckResponse: {
                  fields: { status: { type: 'ServingStatus', id: 1 } },
                  nested: { ServingStatus: { values: { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } } },
                },
                Health: {
                  methods: { Check: { requestType: 'HealthCheckRequest', responseType: 'HealthCheckResponse' } },
                },
              },
            },
          },
        },
      },
    },
  },
};

type ServiceCtor = grpc.ServiceClientConstructor;
interface Services {
  KV: ServiceCtor;
  Watch: ServiceCtor;
  Lease: ServiceCtor;
  Maintenance: ServiceCtor;
  Cluster: ServiceCtor;
  Health: ServiceCtor;
}

let services: Services | undefined;

function loadServices(): Services {
  if (services) return services;
  const etcd = grpc.loadPackageDefinition(
    protoLoader.loadSync(path.join(etcdProtoDir(), 'rpc.proto'), LOADER_OPTIONS),
  ) as unknown as { etcdserverpb: Record<string, ServiceCtor> };
  const health = grpc.loadPackageDefinition(
    protoLoader.fromJSON(HEALTH_PROTO as Parameters<typeof protoLoader.fromJSON>[0], LOADER_OPTIONS),
  ) as unknown as { grpc: { health: { v1: { Health: ServiceCtor } } } };
  const pb = etcd.etcdserverpb;
  services = {
    KV: pb.KV!,
    Watch: pb.Watch!,
    Lease: pb.Lease!,
    Maintenance: pb.Maintenance!,
    Cluster: pb.Cluster!,
    Health: health.grpc.health.v1.Health,
  };
  return services;
}

type UnaryMethod = (
  req: unknown,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, res: unknown) => void,
) => void;

function unary<Res>(client: grpc.Client, method: string, req: unknown, timeoutMs = DEFAULT_DEADLINE_MS): Promise<Res> {
  const fn = (client as unknown as Record<string, UnaryMethod>)[method];
  if (!fn) throw new Error(`no gRPC method ${method}`);
  return new Promise((resolve, reject) => {
    fn.call(client, req, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res as Res)));
  });
}

/** One connection's worth of etcd service clients for `address` (host:port, no scheme). */
export class EtcdClient {
  private readonly kvClient: grpc.Client;
  private readonly watchClient: grpc.Client;
  private readonly leaseClient: grpc.Client;
  private readonly maintenanceClient: grpc.Client;
  private readonly clusterClient: grpc.Client;
  private readonly healthClient: grpc.Client;
  private readonly streams = new Set<{ close(): void }>();

  /** `creds`: plaintext unless given (e.g. `grpc.credentials.createSsl(ca, key, cert)` for a TLS server). */
  constructor(
    readonly address: string,
    creds: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  ) {
    const s = loadServices();
    // Generous receive limit: the request-too-large test reads back nothing big, but lists may be large.
    const opts: grpc.ClientOptions = { 'grpc.max_receive_message_length': 64 * 1024 * 1024 };
    this.kvClient = new s.KV(address, creds, opts);
    this.watchClient = new s.Watch(address, creds, opts);
    this.leaseClient = new s.Lease(address, creds, opts);
    this.maintenanceClient = new s.Maintenance(address, creds, opts);
    this.clusterClient = new s.Cluster(address, creds, opts);
    this.healthClient = new s.Health(address, creds, opts);
  }

  range(req: T.RangeRequest): Promise<T.RangeResponse> {
    return unary(this.kvClient, 'Range', req);
  }
  put(req: T.PutRequest): Promise<T.PutResponse> {
    return unary(this.kvClient, 'Put', req);
  }
  deleteRange(req: T.DeleteRangeRequest): Promise<T.DeleteRangeResponse> {
    return unary(this.kvClient, 'DeleteRange', req);
  }
  txn(req: T.TxnRequest): Promise<T.TxnResponse> {
    return unary(this.kvClient, 'Txn', req);
  }
  compact(revision: T.Int64In, physical = false): Promise<T.CompactionResponse> {
    return unary(this.kvClient, 'Compact', { revision, physical });
  }

  leaseGrant(TTL: T.Int64In, ID: T.Int64In = 0): Promise<T.LeaseGrantResponse> {
    return unary(this.leaseClient, 'LeaseGrant', { TTL, ID });
  }
  leaseRevoke(ID: T.Int64In): Promise<{ header: T.ResponseHeader }> {
    return unary(this.leaseClient, 'LeaseRevoke', { ID });
  }
  leaseTimeToLive(ID: T.Int64In, keys = false): Promise<T.LeaseTimeToLiveResponse> {
    return unary(this.leaseClient, 'LeaseTimeToLive', { ID, keys });
  }
  leaseLeases(): Promise<T.LeaseLeasesResponse> {
    return unary(this.leaseClient, 'LeaseLeases', {});
  }

  status(): Promise<T.StatusResponse> {
    return unary(this.maintenanceClient, 'Status', {});
  }
  alarmList(): Promise<T.AlarmResponse> {
    return unary(this.maintenanceClient, 'Alarm', { action: 'Get', memberID: 0, alarm: 'None' });
  }
  hashKV(revision: T.Int64In = 0): Promise<T.HashKVResponse> {
    return unary(this.maintenanceClient, 'HashKV', { revision });
  }
  memberList(): Promise<T.MemberListResponse> {
    return unary(this.clusterClient, 'MemberList', {});
  }
  healthCheck(service = ''): Promise<{ status: T.HealthStatus }> {
    return unary(this.healthClient, 'Check', { service });
  }

  /** A bidirectional Watch stream; closed with the client if the test forgets. */
  watch(): WatchStream {
    const stream = new WatchStream(
      (this.watchClient as unknown as { Watch(): grpc.ClientDuplexStream<T.WatchRequest, T.WatchResponse> }).Watch(),
    );
    this.track(stream);
    return stream;
  }

  /** A LeaseKeepAlive stream; closed with the client if the test forgets. */
  keepAlive(): KeepAliveStream {
    const stream = new KeepAliveStream(
      (
        this.leaseClient as unknown as {
          LeaseKeepAlive(): grpc.ClientDuplexStream<{ ID: T.Int64In }, T.LeaseKeepAliveResponse>;
        }
      ).LeaseKeepAlive(),
    );
    this.track(stream);
    return stream;
  }

  close(): void {
    for (const s of this.streams) s.close();
    this.streams.clear();
    for (const c of [
      this.kvClient,
      this.watchClient,
      this.leaseClient,
      this.maintenanceClient,
      this.clusterClient,
      this.healthClient,
    ]) {
      c.close();
    }
  }

  private track(stream: { close(): void }): void {
    this.streams.add(stream);
  }
}

/**
 * The etcd v3 API definitions, loaded from the `etcd3` package's protos (not copied into this repo): the
 * server implements them, the etcd backend calls them. Field names keep the proto's snake_case; int64s are
 * decimal strings (never lossy JS numbers); bytes are Buffers.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const require = createRequire(import.meta.url);

/** Directory holding rpc.proto, kv.proto and auth.proto. */
export const ETCD_PROTO_DIR = path.join(path.dirname(require.resolve('etcd3/package.json')), 'proto');

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

export const packageDefinition = protoLoader.loadSync(path.join(ETCD_PROTO_DIR, 'rpc.proto'), LOADER_OPTIONS);

const loaded = grpc.loadPackageDefinition(packageDefinition) as unknown as {
  etcdserverpb: Record<string, grpc.ServiceClientConstructor>;
};

/** Client constructor of `etcdserverpb.<name>` (KV, Watch, Lease, Cluster, Maintenance, Auth). */
export function etcdClientCtor(name: string): grpc.ServiceClientConstructor {
  const ctor = loaded.etcdserverpb[name];
  if (!ctor) throw new Error(`etcdserverpb.${name} is not in rpc.proto`);
  return ctor;
}

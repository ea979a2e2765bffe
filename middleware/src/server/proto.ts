/** The etcd v3 service definitions the server implements (loaded once, in backends/etcd/proto.ts). */
import type * as grpc from '@grpc/grpc-js';
import { etcdClientCtor } from '../backends/etcd/proto.js';

export { ETCD_PROTO_DIR, LOADER_OPTIONS, packageDefinition } from '../backends/etcd/proto.js';

/** Service definition of `etcdserverpb.<name>` (KV, Watch, Lease, Cluster, Maintenance, Auth). */
export function etcdService(name: string): grpc.ServiceDefinition {
  return etcdClientCtor(name).service;
}

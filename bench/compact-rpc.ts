/**
 * etcd's Compact RPC with a deadline of the caller's: test/support's client bounds every call at 15 s, and a
 * physical compaction (the RPC returns once old revisions are removed) of a large history under write load
 * can take longer.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

type Compact = (req: { revision: string; physical: boolean }, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void) => void;
type KvClient = grpc.Client & { Compact: Compact };

let kvCtor: grpc.ServiceClientConstructor | undefined;

/** etcdserverpb.KV from the rpc.proto the etcd3 package ships (as test/support/grpc.ts loads it). */
function kvService(): grpc.ServiceClientConstructor {
  if (kvCtor) return kvCtor;
  const require = createRequire(import.meta.url);
  const proto = path.join(path.dirname(require.resolve('etcd3')), '..', 'proto', 'rpc.proto');
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(proto, { keepCase: true, longs: String, enums: String, defaults: true })) as unknown as {
    etcdserverpb: { KV: grpc.ServiceClientConstructor };
  };
  return (kvCtor = pkg.etcdserverpb.KV);
}

/** Compact(revision, physical: true) on the server at `address` (host:port), failing after `timeoutMs`. */
export async function compactPhysical(address: string, revision: number, timeoutMs: number): Promise<void> {
  const client = new (kvService())(address, grpc.credentials.createInsecure()) as unknown as KvClient;
  try {
    await new Promise<void>((resolve, reject) =>
      client.Compact({ revision: String(revision), physical: true }, { deadline: Date.now() + timeoutMs }, (err) => (err ? reject(err) : resolve())),
    );
  } finally {
    client.close();
  }
}

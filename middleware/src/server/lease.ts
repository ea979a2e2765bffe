/** etcdserverpb.Lease: Grant, Revoke, KeepAlive (stream), TimeToLive, Leases. */
import type * as grpc from '@grpc/grpc-js';
import { id, num } from '../mvcc/api.js';
import type { Store } from '../mvcc/store.js';
import { toServiceError } from './errors.js';
import { countStreamRequest, unary } from './rpc.js';

export function leaseService(store: Store): grpc.UntypedServiceImplementation {
  return {
    LeaseGrant: unary('LeaseGrant', async (req: { TTL: string; ID: string }) => {
      const granted = await store.leaseGrant(id(req.ID), num(req.TTL));
      return { header: granted.header, ID: granted.id, TTL: granted.ttl, error: '' };
    }),
    LeaseRevoke: unary('LeaseRevoke', async (req: { ID: string }) => ({ header: await store.leaseRevoke(id(req.ID)) })),
    LeaseTimeToLive: unary('LeaseTimeToLive', (req: { ID: string; keys: boolean }) => {
      const leaseId = id(req.ID);
      const lease = store.leases.get(leaseId);
      // etcd answers an unknown lease with TTL -1 rather than an error (etcdctl prints "already expired")
      if (!lease) return { header: store.header(), ID: leaseId, TTL: -1, grantedTTL: 0, keys: [] };
      const { remaining } = store.leaseTimeToLive(leaseId);
      const keys = req.keys ? [...lease.keys].map((k) => Buffer.from(k, 'latin1')).sort(Buffer.compare) : [];
      return { header: store.header(), ID: leaseId, TTL: remaining, grantedTTL: lease.ttl, keys };
    }),
    LeaseLeases: unary('LeaseLeases', () => ({
      header: store.header(),
      leases: store.leases.all().map((l) => ({ ID: l.id })),
    })),
    LeaseKeepAlive: (call: grpc.ServerDuplexStream<{ ID: string }, object>) => {
      // answers in request order: each renewal is persisted before its response
      let chain = Promise.resolve();
      call.on('data', (req: { ID: string }) => {
        chain = chain.then(async () => {
          countStreamRequest('LeaseKeepAlive');
          try {
            const leaseId = id(req.ID);
            const { ttl, header } = await store.leaseKeepAlive(leaseId);
            if (!call.cancelled) call.write({ header, ID: leaseId, TTL: ttl });
          } catch (err) {
            call.destroy(Object.assign(new Error(String(toServiceError(err).details)), toServiceError(err)));
          }
        });
      });
      call.on('end', () => void chain.then(() => call.end()));
      call.on('error', () => undefined);
    },
  };
}

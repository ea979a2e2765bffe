/** etcdserverpb.Maintenance and Cluster: what etcdctl and kube-apiserver ask of a single-member "cluster". */
import type * as grpc from '@grpc/grpc-js';
import { crc32 } from 'node:zlib';
import { num } from '../mvcc/api.js';
import { errNotCapable } from '../mvcc/errors.js';
import type { Store } from '../mvcc/store.js';
import { unary } from './rpc.js';

export interface ServerIdentity {
  /** Version reported by Status (kube-apiserver enables watch progress requests from 3.5.13). */
  version: string;
  /** Member name in MemberList. */
  name: string;
  /** URLs clients reach this server on (MemberList clientURLs). */
  clientUrls: string[];
}

export function maintenanceService(store: Store, identity: ServerIdentity): grpc.UntypedServiceImplementation {
  return {
    Status: unary('Status', async () => {
      const dbSize = await store.dbSize();
      return {
        header: store.header(),
        version: identity.version,
        dbSize,
        leader: store.memberId,
        raftIndex: store.revision,
        raftTerm: 1,
        raftAppliedIndex: store.revision,
        errors: [],
        dbSizeInUse: dbSize,
        isLearner: false,
      };
    }),
    Alarm: unary('Alarm', () => ({ header: store.header(), alarms: [] })),
    // The databases reclaim space themselves (SQLite and PostgreSQL autovacuum, InnoDB purge).
    Defragment: unary('Defragment', () => ({ header: store.header() })),
    HashKV: unary('HashKV', async (req: { revision: string }) => {
      // A hash of every live key and its versions at the revision: equal on two stores with equal data.
      const rev = num(req.revision) || store.revision;
      const res = await store.range({ key: Buffer.from([0]), range_end: Buffer.from([0]), revision: rev });
      let hash = 0;
      for (const kv of res.kvs) {
        hash = crc32(kv.key, hash);
        hash = crc32(Buffer.from(`${kv.create_revision}:${kv.mod_revision}:${kv.version}:${kv.lease}`), hash);
        hash = crc32(kv.value, hash);
      }
      // etcd reports -1 before the first compaction
      return { header: store.header(), hash, compact_revision: store.compactRevision || -1 };
    }),
    Hash: unary('Hash', () => {
      throw errNotCapable();
    }),
  };
}

export function clusterService(store: Store, identity: ServerIdentity): grpc.UntypedServiceImplementation {
  return {
    MemberList: unary('MemberList', () => ({
      header: store.header(),
      members: [{ ID: store.memberId, name: identity.name, peerURLs: [], clientURLs: identity.clientUrls, isLearner: false }],
    })),
  };
}

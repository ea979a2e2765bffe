/**
 * gRPC errors exactly as etcd sends them (code + message). Clients match on the text
 * (k8s.io/apiserver, etcdctl, clientv3's rpctypes), so the middleware must reproduce both.
 * Use as `await assert.rejects(promise, ETCD_ERRORS.compacted)`.
 */
import grpc from '@grpc/grpc-js';

const { OUT_OF_RANGE, INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION } = grpc.status;

export const ETCD_ERRORS = {
  compacted: { code: OUT_OF_RANGE, details: 'etcdserver: mvcc: required revision has been compacted' },
  futureRevision: { code: OUT_OF_RANGE, details: 'etcdserver: mvcc: required revision is a future revision' },
  requestTooLarge: { code: INVALID_ARGUMENT, details: 'etcdserver: request is too large' },
  leaseNotFound: { code: NOT_FOUND, details: 'etcdserver: requested lease not found' },
  leaseExists: { code: FAILED_PRECONDITION, details: 'etcdserver: lease already exists' },
  keyNotProvided: { code: INVALID_ARGUMENT, details: 'etcdserver: key is not provided' },
  duplicateKeyInTxn: { code: INVALID_ARGUMENT, details: 'etcdserver: duplicate key given in txn request' },
  keyNotFound: { code: INVALID_ARGUMENT, details: 'etcdserver: key not found' },
  valueProvided: { code: INVALID_ARGUMENT, details: 'etcdserver: value is provided' },
  leaseProvided: { code: INVALID_ARGUMENT, details: 'etcdserver: lease is provided' },
} as const;

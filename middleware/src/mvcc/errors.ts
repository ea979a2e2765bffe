/**
 * etcd's client-visible errors. Clients (kube-apiserver, etcdctl, client libraries) match them by gRPC code
 * and exact message text, so these strings are etcd's, not ours.
 */
import { status as Code } from '@grpc/grpc-js';

export class EtcdError extends Error {
  constructor(
    readonly code: Code,
    message: string,
  ) {
    super(message);
    this.name = 'EtcdError';
  }
}

const make = (code: Code, message: string) => () => new EtcdError(code, message);

export const errCompacted = make(Code.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted');
export const errFutureRev = make(Code.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision');
export const errRequestTooLarge = make(Code.INVALID_ARGUMENT, 'etcdserver: request is too large');
export const errLeaseNotFound = make(Code.NOT_FOUND, 'etcdserver: requested lease not found');
export const errLeaseExists = make(Code.FAILED_PRECONDITION, 'etcdserver: lease already exists');
export const errLeaseTTLTooLarge = make(Code.OUT_OF_RANGE, 'etcdserver: too large lease TTL');
export const errEmptyKey = make(Code.INVALID_ARGUMENT, 'etcdserver: key is not provided');
export const errValueProvided = make(Code.INVALID_ARGUMENT, 'etcdserver: value is provided');
export const errLeaseProvided = make(Code.INVALID_ARGUMENT, 'etcdserver: lease is provided');
export const errKeyNotFound = make(Code.INVALID_ARGUMENT, 'etcdserver: key not found');
export const errDuplicateKey = make(Code.INVALID_ARGUMENT, 'etcdserver: duplicate key given in txn request');
export const errTooManyOps = make(Code.INVALID_ARGUMENT, 'etcdserver: too many operations in txn request');
export const errNotCapable = make(Code.UNIMPLEMENTED, 'etcdserver: not capable');

/**
 * A key longer than the database it routes to can store (etcd itself limits only the request size). Not
 * etcd's text: etcd has no such error. Names the length and the limit, which the README documents.
 */
export function errKeyTooLong(err: { keyBytes: number; limitBytes: number; storage: string }): EtcdError {
  return new EtcdError(
    Code.INVALID_ARGUMENT,
    `etcdserver: key is too long: ${err.keyBytes} bytes exceed the ${err.limitBytes}-byte key limit of ${err.storage} storage`,
  );
}

/** The storage is unreachable: clients retry. The message says which store and why. */
export function errUnavailable(reason: string): EtcdError {
  return new EtcdError(Code.UNAVAILABLE, `etcdserver: storage unavailable: ${reason}`);
}

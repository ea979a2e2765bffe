/**
 * etcd's client-visible errors, as plain values: what went wrong (`kind`) and etcd's exact message text.
 * Clients (kube-apiserver, etcdctl, client libraries) match them by gRPC code and that text, so the strings
 * are etcd's, not ours; the gRPC code of each kind is in one table in server/errors.ts.
 */

export type EtcdErrorKind =
  | 'compacted'
  | 'future_revision'
  | 'request_too_large'
  | 'lease_not_found'
  | 'lease_exists'
  | 'lease_ttl_too_large'
  | 'empty_key'
  | 'value_provided'
  | 'lease_provided'
  | 'key_not_found'
  | 'duplicate_key'
  | 'too_many_ops'
  | 'not_capable'
  | 'key_too_long'
  | 'unavailable'
  | 'child_layer';

export class EtcdError extends Error {
  constructor(
    readonly kind: EtcdErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'EtcdError';
  }
}

const make = (kind: EtcdErrorKind, message: string) => () => new EtcdError(kind, message);

export const errCompacted = make('compacted', 'etcdserver: mvcc: required revision has been compacted');
export const errFutureRev = make('future_revision', 'etcdserver: mvcc: required revision is a future revision');
export const errRequestTooLarge = make('request_too_large', 'etcdserver: request is too large');
export const errLeaseNotFound = make('lease_not_found', 'etcdserver: requested lease not found');
export const errLeaseExists = make('lease_exists', 'etcdserver: lease already exists');
export const errLeaseTTLTooLarge = make('lease_ttl_too_large', 'etcdserver: too large lease TTL');
export const errEmptyKey = make('empty_key', 'etcdserver: key is not provided');
export const errValueProvided = make('value_provided', 'etcdserver: value is provided');
export const errLeaseProvided = make('lease_provided', 'etcdserver: lease is provided');
export const errKeyNotFound = make('key_not_found', 'etcdserver: key not found');
export const errDuplicateKey = make('duplicate_key', 'etcdserver: duplicate key given in txn request');
export const errTooManyOps = make('too_many_ops', 'etcdserver: too many operations in txn request');
export const errNotCapable = make('not_capable', 'etcdserver: not capable');

/**
 * A key longer than the database it routes to can store (etcd itself limits only the request size). Not
 * etcd's text: etcd has no such error. Names the length and the limit, which the README documents.
 */
export function errKeyTooLong(err: { keyBytes: number; limitBytes: number; storage: string }): EtcdError {
  return new EtcdError('key_too_long', `etcdserver: key is too long: ${err.keyBytes} bytes exceed the ${err.limitBytes}-byte key limit of ${err.storage} storage`);
}

/** The storage is unreachable: clients retry. The message says which store and why. */
export function errUnavailable(reason: string): EtcdError {
  return new EtcdError('unavailable', `etcdserver: storage unavailable: ${reason}`);
}

/**
 * This middleware is a child layer: it stores what its parent hands down, at the parent's revisions, and
 * takes no other write (not etcd's text: etcd has no layers). The message says whose child it is and what to do.
 */
export function errChildLayer(message: string): EtcdError {
  return new EtcdError('child_layer', `etcdserver: ${message}`);
}

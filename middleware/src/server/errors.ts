/** The one mapping of the middleware's errors to gRPC status (etcd's `api/v3rpc` does the same in one table). */
import * as grpc from '@grpc/grpc-js';
import { logger } from '../log.js';
import { EtcdError, type EtcdErrorKind } from '../mvcc/errors.js';

const Code = grpc.status;

/** etcd's gRPC code for each error (etcd `api/v3rpc/rpctypes`). */
const GRPC_CODE: Record<EtcdErrorKind, grpc.status> = {
  compacted: Code.OUT_OF_RANGE,
  future_revision: Code.OUT_OF_RANGE,
  request_too_large: Code.INVALID_ARGUMENT,
  lease_not_found: Code.NOT_FOUND,
  lease_exists: Code.FAILED_PRECONDITION,
  lease_ttl_too_large: Code.OUT_OF_RANGE,
  empty_key: Code.INVALID_ARGUMENT,
  value_provided: Code.INVALID_ARGUMENT,
  lease_provided: Code.INVALID_ARGUMENT,
  key_not_found: Code.INVALID_ARGUMENT,
  duplicate_key: Code.INVALID_ARGUMENT,
  too_many_ops: Code.INVALID_ARGUMENT,
  not_capable: Code.UNIMPLEMENTED,
  key_too_long: Code.INVALID_ARGUMENT,
  unavailable: Code.UNAVAILABLE,
  child_layer: Code.FAILED_PRECONDITION,
};

/** The gRPC status of an error a handler threw; anything unexpected is logged and sent as INTERNAL. */
export function toServiceError(err: unknown): Partial<grpc.ServiceError> {
  if (err instanceof EtcdError) return { code: GRPC_CODE[err.kind], details: err.message, message: err.message };
  logger.error('unexpected error in request handler', { error: err, stack: (err as Error)?.stack });
  const message = `etcdserver: ${(err as Error)?.message ?? String(err)}`;
  return { code: grpc.status.INTERNAL, details: message, message };
}

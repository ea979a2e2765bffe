/**
 * Plumbing shared by the services: request-size accounting, per-method metrics, unary handlers (errors
 * mapped to gRPC status by errors.ts).
 */
import * as grpc from '@grpc/grpc-js';
import { Counter, Histogram } from 'prom-client';
import { errRequestTooLarge } from '../mvcc/errors.js';
import { toServiceError } from './errors.js';
import { registry } from '../metrics.js';

/** etcd's --max-request-bytes default: larger writes get "request is too large". */
export const MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;
/** gRPC accepts this much more than MAX_REQUEST_BYTES before refusing at the transport (as etcd does). */
export const GRPC_OVERHEAD_BYTES = 512 * 1024;

const requests = new Counter({
  name: 'harikube_grpc_requests_total',
  help: 'gRPC requests handled, by method and status code.',
  labelNames: ['method', 'code'],
  registers: [registry],
});
const latency = new Histogram({
  name: 'harikube_grpc_request_seconds',
  help: 'gRPC unary request latency by method.',
  labelNames: ['method'],
  buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
  registers: [registry],
});

const sizes = new WeakMap<object, number>();

/** Wraps a service definition so handlers can learn each request's encoded size (`requestBytes`). */
export function withRequestSizes(def: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, m] of Object.entries(def)) {
    const deserialize = m.requestDeserialize;
    out[name] = {
      ...m,
      requestDeserialize: (buf: Buffer) => {
        const req = deserialize(buf) as object;
        sizes.set(req, buf.length);
        return req;
      },
    };
  }
  return out as grpc.ServiceDefinition;
}

export function requestBytes(req: object): number {
  return sizes.get(req) ?? 0;
}

/** Rejects writes larger than etcd accepts. */
export function checkRequestSize(req: object): void {
  if (requestBytes(req) > MAX_REQUEST_BYTES) throw errRequestTooLarge();
}

/** A unary handler from an async function, with metrics and etcd error mapping. */
export function unary<Req extends object, Res>(method: string, fn: (req: Req) => Promise<Res> | Res): grpc.handleUnaryCall<Req, Res> {
  // bound on the first request (a series appears once its method was called), not looked up by label on every one
  let timer: { startTimer: () => () => void } | undefined;
  let ok: { inc: () => void } | undefined;
  return (call, callback) => {
    const end = (timer ??= latency.labels({ method })).startTimer();
    Promise.resolve()
      .then(() => fn(call.request))
      .then(
        (res) => {
          end();
          (ok ??= requests.labels({ method, code: 'OK' })).inc();
          callback(null, res);
        },
        (err: unknown) => {
          end();
          const e = toServiceError(err);
          requests.inc({ method, code: grpc.status[e.code ?? grpc.status.UNKNOWN] ?? 'UNKNOWN' });
          callback(e, null);
        },
      );
  };
}

export function countStreamRequest(method: string, code = 'OK'): void {
  requests.inc({ method, code });
}

/**
 * grpc.health.v1.Health (Check): SERVING while the storage answers. Messages are one field each, so they
 * are encoded by hand rather than shipping another proto.
 */
import * as grpc from '@grpc/grpc-js';
import type { Store } from '../mvcc/store.js';

const SERVING = 1;
const NOT_SERVING = 2;

function decodeRequest(buf: Buffer): { service: string } {
  // HealthCheckRequest { string service = 1; }
  if (buf.length >= 2 && buf[0] === 0x0a) return { service: buf.subarray(2, 2 + buf[1]!).toString() };
  return { service: '' };
}

const encodeResponse = (r: { status: number }) => Buffer.from([0x08, r.status]);

export const healthDefinition: grpc.ServiceDefinition = {
  Check: {
    path: '/grpc.health.v1.Health/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: (r: { service: string }) => Buffer.concat([Buffer.from([0x0a, r.service.length]), Buffer.from(r.service)]),
    requestDeserialize: decodeRequest,
    responseSerialize: encodeResponse,
    responseDeserialize: (b: Buffer) => ({ status: b[1] ?? 0 }),
  },
};

export function healthService(store: Store): grpc.UntypedServiceImplementation {
  return {
    Check: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<{ status: number }>) => {
      void store.ready().then((ok) => callback(null, { status: ok ? SERVING : NOT_SERVING }));
    },
  };
}

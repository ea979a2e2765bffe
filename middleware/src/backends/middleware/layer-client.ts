/**
 * The parent's client of a child middleware's layer service (layer-protocol.ts): unary calls with a
 * deadline, on the same channel settings and TLS as the etcd client (one channel per listed host; a host
 * found unreachable hands the next calls to the next one). Errors: unreachable or timed out ->
 * `BackendUnavailableError` (the child may be down or restarting: its keys fail with Unavailable meanwhile,
 * and the channel reconnects on its own); anything else -> an Error carrying the child's message.
 */
import * as grpc from '@grpc/grpc-js';
import { BackendUnavailableError } from '../backend.js';
import { CHANNEL_OPTIONS, UNAVAILABLE_CODES, credentials, type EtcdClientOptions } from '../etcd/client.js';
import { PARENT_METADATA, layerServiceDefinition, type LayerMethod, type LayerMethods } from './layer-protocol.js';

const LayerClientCtor = grpc.makeGenericClientConstructor(layerServiceDefinition, 'Layer');

type Unary = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

/** The endpoint answered UNIMPLEMENTED: no layer service, so it is an etcd, not a middleware. */
export class NotAMiddlewareError extends Error {}

export class LayerClient {
  private readonly channels: { host: string; client: grpc.Client }[];
  private current = 0;
  /** Sent as `harikube-parent` once known (the parent's cluster ID), so the child can tell its parent. */
  parent = '';

  constructor(
    private readonly o: EtcdClientOptions,
    /** What the endpoint is, for "check that ... is running" (the probe does not know yet). */
    private readonly server = 'the child middleware',
  ) {
    const creds = credentials(o);
    this.channels = o.hosts.map((host) => ({ host, client: new LayerClientCtor(host, creds, CHANNEL_OPTIONS) }));
  }

  close(): void {
    for (const c of this.channels) c.client.close();
  }

  call<M extends LayerMethod>(method: M, req: LayerMethods[M][0], timeoutMs = this.o.timeoutMs): Promise<LayerMethods[M][1]> {
    const i = this.current;
    const { host, client } = this.channels[i]!;
    const meta = new grpc.Metadata();
    if (this.parent) meta.set(PARENT_METADATA, this.parent);
    const opts: grpc.CallOptions = timeoutMs > 0 ? { deadline: Date.now() + timeoutMs } : {};
    return new Promise((resolve, reject) => {
      (client as unknown as Record<string, Unary>)[method]!.call(client, req, meta, opts, (err, res) => {
        if (!err) return resolve(res as LayerMethods[M][1]);
        if (UNAVAILABLE_CODES.has(err.code) && this.channels.length > 1 && this.current === i) this.current = (i + 1) % this.channels.length;
        const message = `${this.o.description}: ${method} on ${host}: ${err.details || err.message}`;
        if (err.code === grpc.status.UNIMPLEMENTED) return reject(new NotAMiddlewareError(message));
        if (UNAVAILABLE_CODES.has(err.code)) return reject(new BackendUnavailableError(`${message}; check that ${this.server} is running and reachable`, { cause: err }));
        reject(new Error(message, { cause: err }));
      });
    });
  }
}

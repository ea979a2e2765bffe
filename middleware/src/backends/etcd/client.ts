/**
 * A small etcd v3 client for the etcd backend: unary KV and Maintenance calls with a deadline, and history
 * reads through a Watch stream. One gRPC channel per member; a call that finds its member unreachable moves
 * to the next one for the following calls (a cluster keeps serving when a member stops). Channels reconnect
 * on their own within a second, so an etcd that comes back is used again without a restart.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { BackendTLS } from '../../topology/schema.js';
import { BackendUnavailableError } from '../backend.js';
import { etcdClientCtor } from './proto.js';

/** mvccpb.KeyValue as the loader delivers it. */
export interface EtcdKeyValue {
  key: Buffer;
  create_revision: string;
  mod_revision: string;
  version: string;
  value: Buffer;
  lease: string;
}

export interface EtcdEvent {
  /** The loader names the enum's values as etcd's kv.proto spells them (Put, Delete). */
  type: 'Put' | 'Delete';
  kv: EtcdKeyValue;
  prev_kv?: EtcdKeyValue | null;
}

export interface EtcdHeader {
  revision: string;
}

export interface EtcdRangeResponse {
  header: EtcdHeader;
  kvs: EtcdKeyValue[];
  count: string;
  more: boolean;
}

export interface EtcdTxnResponse {
  header: EtcdHeader;
  succeeded: boolean;
  responses: { response_range?: EtcdRangeResponse | null }[];
}

/** gRPC codes that mean "the etcd cannot be reached or cannot answer now". */
export const UNAVAILABLE_CODES = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.CANCELLED, grpc.status.RESOURCE_EXHAUSTED, grpc.status.ABORTED]);

export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.max_receive_message_length': 256 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
};

type Unary = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

interface Member {
  host: string;
  kv: grpc.Client;
  watch: grpc.Client;
  maintenance: grpc.Client;
}

export interface EtcdClientOptions {
  hosts: string[];
  tls: boolean;
  backendTLS?: BackendTLS;
  /** Deadline of every call, ms (0: none). */
  timeoutMs: number;
  description: string;
}

/** Channel credentials of an `http(s)://` endpoint with the rule's backendTLS (also used by the layer client). */
export function credentials(o: EtcdClientOptions): grpc.ChannelCredentials {
  if (!o.tls) return grpc.credentials.createInsecure();
  const read = (what: string, file: string | undefined) => {
    if (!file) return null;
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`${o.description}: cannot read the TLS ${what} file ${file}: ${(err as Error).message}; fix backendTLS`);
    }
  };
  const t = o.backendTLS;
  return grpc.credentials.createSsl(
    read('CA', t?.caFile),
    read('key', t?.keyFile),
    read('certificate', t?.certFile),
    t?.skipVerify ? { checkServerIdentity: () => undefined, rejectUnauthorized: false } : undefined,
  );
}

export class EtcdClient {
  private readonly members: Member[];
  private current = 0;

  constructor(private readonly o: EtcdClientOptions) {
    const creds = credentials(o);
    const [KV, Watch, Maintenance] = ['KV', 'Watch', 'Maintenance'].map(etcdClientCtor) as [grpc.ServiceClientConstructor, grpc.ServiceClientConstructor, grpc.ServiceClientConstructor];
    this.members = o.hosts.map((host) => ({
      host,
      kv: new KV(host, creds, CHANNEL_OPTIONS),
      watch: new Watch(host, creds, CHANNEL_OPTIONS),
      maintenance: new Maintenance(host, creds, CHANNEL_OPTIONS),
    }));
  }

  close(): void {
    for (const m of this.members) for (const c of [m.kv, m.watch, m.maintenance]) c.close();
  }

  range(req: Record<string, unknown>): Promise<EtcdRangeResponse> {
    return this.call('kv', 'Range', req) as Promise<EtcdRangeResponse>;
  }

  txn(req: Record<string, unknown>): Promise<EtcdTxnResponse> {
    return this.call('kv', 'Txn', req) as Promise<EtcdTxnResponse>;
  }

  compact(revision: number): Promise<unknown> {
    return this.call('kv', 'Compact', { revision: String(revision), physical: false });
  }

  status(): Promise<{ header: EtcdHeader; version: string; dbSize: string }> {
    return this.call('maintenance', 'Status', {}) as Promise<{ header: EtcdHeader; version: string; dbSize: string }>;
  }

  /** One unary call on the current member; unreachable: the next call goes to the next member. */
  private call(service: 'kv' | 'maintenance', method: string, req: unknown): Promise<unknown> {
    const i = this.current;
    const m = this.members[i]!;
    const client = m[service] as unknown as Record<string, Unary>;
    const opts: grpc.CallOptions = this.o.timeoutMs > 0 ? { deadline: Date.now() + this.o.timeoutMs } : {};
    return new Promise((resolve, reject) => {
      client[method]!.call(client, req, new grpc.Metadata(), opts, (err, res) => {
        if (!err) return resolve(res);
        if (UNAVAILABLE_CODES.has(err.code) && this.members.length > 1 && this.current === i) this.current = (i + 1) % this.members.length;
        reject(this.failure(err, `${method} on ${m.host}`));
      });
    });
  }

  /**
   * Every event of revisions [from, to] (etcd revisions), in order, each with its previous version, read
   * from a Watch that starts at `from`. Stops after the events of `to`, or once `enough(events)` holds at a
   * revision boundary.
   */
  history(from: number, to: number, enough: (events: EtcdEvent[]) => boolean): Promise<EtcdEvent[]> {
    const m = this.members[this.current]!;
    const stream = (m.watch as unknown as { Watch(meta: grpc.Metadata, opts: grpc.CallOptions): grpc.ClientDuplexStream<unknown, unknown> }).Watch(
      new grpc.Metadata(),
      this.o.timeoutMs > 0 ? { deadline: Date.now() + Math.max(this.o.timeoutMs, 60_000) } : {},
    );
    const all = Buffer.from([0]);
    return new Promise<EtcdEvent[]>((resolve, reject) => {
      const events: EtcdEvent[] = [];
      let finished = false;
      const finish = (err?: unknown) => {
        if (finished) return;
        finished = true;
        stream.removeAllListeners('data');
        stream.on('error', () => undefined);
        stream.cancel();
        if (err) reject(err);
        else resolve(events);
      };
      stream.on('data', (res: { created: boolean; canceled: boolean; compact_revision: string; cancel_reason: string; events: EtcdEvent[] }) => {
        if (Number(res.compact_revision) > 0) {
          return finish(new Error(`${this.o.description}: history from etcd revision ${from} is compacted (etcd compacted at ${res.compact_revision})`));
        }
        if (res.canceled) return finish(new BackendUnavailableError(`${this.o.description}: watch canceled: ${res.cancel_reason}`));
        for (const ev of res.events ?? []) {
          const rev = Number(ev.kv.mod_revision);
          if (rev > to) return finish();
          const last = events[events.length - 1];
          if (last && rev > Number(last.kv.mod_revision) && enough(events)) return finish();
          events.push(ev);
        }
        const last = events[events.length - 1];
        if (last && Number(last.kv.mod_revision) >= to) return finish();
      });
      stream.on('error', (err: grpc.ServiceError) => finish(this.failure(err, `Watch on ${m.host}`)));
      stream.on('end', () => finish(new BackendUnavailableError(`${this.o.description}: the watch ended before revision ${to}`)));
      stream.write({ create_request: { key: all, range_end: all, start_revision: String(from), prev_kv: true } });
    });
  }

  private failure(err: grpc.ServiceError, what: string): Error {
    const message = `${this.o.description}: ${what}: ${err.details || err.message}`;
    if (UNAVAILABLE_CODES.has(err.code)) return new BackendUnavailableError(`${message}; check that the etcd is running and reachable`, { cause: err });
    return new Error(message, { cause: err });
  }
}

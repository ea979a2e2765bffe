/**
 * Hand-written protobuf encoding of the hot messages (KeyValue, Event, WatchResponse). A watch event is
 * encoded once and its bytes reused for every watcher (field numbers from etcd's kv.proto and rpc.proto).
 */
import type { KeyRow } from '../backends/backend.js';
import type { KeyValue, RangeResponse, ResponseHeader } from './api.js';

const enum Wire {
  Varint = 0,
  Bytes = 2,
}

function varintSize(v: bigint): number {
  let n = 1;
  while (v >= 0x80n) {
    v >>= 7n;
    n++;
  }
  return n;
}

/** Accumulates encoded parts; `finish()` joins them. */
export class ProtoWriter {
  private parts: Buffer[] = [];

  private varintRaw(value: number | bigint | string): void {
    let v = BigInt.asUintN(64, BigInt(value));
    const out = Buffer.allocUnsafe(varintSize(v));
    let i = 0;
    while (v >= 0x80n) {
      out[i++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    out[i] = Number(v);
    this.parts.push(out);
  }

  private smallVarint(v: number): void {
    // fast path for non-negative values below 2^31 (tags, lengths, most revisions)
    if (v < 0x80) {
      this.parts.push(Buffer.of(v));
      return;
    }
    if (v > 0x7fffffff) {
      this.varintRaw(v);
      return;
    }
    const out: number[] = [];
    while (v >= 0x80) {
      out.push((v & 0x7f) | 0x80);
      v >>>= 7;
    }
    out.push(v);
    this.parts.push(Buffer.from(out));
  }

  /** int64/uint64/bool/enum field; omitted when zero (proto3 default). */
  varint(field: number, value: number | bigint | string | boolean | undefined): this {
    if (value === undefined || value === 0 || value === false || value === '0' || value === 0n || value === '') return this;
    this.smallVarint((field << 3) | Wire.Varint);
    if (value === true) this.parts.push(Buffer.of(1));
    else if (typeof value === 'number' && value >= 0) this.smallVarint(value);
    else this.varintRaw(value);
    return this;
  }

  /** bytes/string/message field; omitted when empty unless `always`. */
  bytes(field: number, value: Buffer | string | undefined, always = false): this {
    if (value === undefined) return this;
    const buf = typeof value === 'string' ? Buffer.from(value) : value;
    if (buf.length === 0 && !always) return this;
    this.smallVarint((field << 3) | Wire.Bytes);
    this.smallVarint(buf.length);
    this.parts.push(buf);
    return this;
  }

  finish(): Buffer {
    return this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
  }
}

export function encodeKeyValue(kv: KeyValue): Buffer {
  return new ProtoWriter()
    .bytes(1, kv.key)
    .varint(2, kv.create_revision)
    .varint(3, kv.mod_revision)
    .varint(4, kv.version)
    .bytes(5, kv.value)
    .varint(6, kv.lease)
    .finish();
}

export function encodeHeader(h: ResponseHeader): Buffer {
  return new ProtoWriter().varint(1, h.cluster_id).varint(2, h.member_id).varint(3, h.revision).varint(4, h.raft_term).finish();
}

/** The etcd KeyValue of a stored row (tombstones carry only key and mod_revision, as etcd's DELETE events do). */
export function rowToKeyValue(row: KeyRow, keysOnly = false): KeyValue {
  if (row.deleted) {
    return { key: row.key, create_revision: 0, mod_revision: row.modRevision, version: 0, value: Buffer.alloc(0), lease: 0 };
  }
  return {
    key: row.key,
    create_revision: row.createRevision,
    mod_revision: row.modRevision,
    version: row.version,
    value: keysOnly ? Buffer.alloc(0) : row.value,
    lease: row.lease,
  };
}

/** A committed change as watchers see it; encoded lazily, at most once per variant. */
export class WatchEvent {
  private plain?: Buffer;
  private withPrev?: Buffer;

  constructor(
    readonly type: 'Put' | 'Delete',
    readonly kv: KeyValue,
    readonly prevKv: KeyValue | undefined,
    readonly revision: number,
    readonly sub: number,
  ) {}

  get key(): Buffer {
    return this.kv.key;
  }

  static fromRow(row: KeyRow, prev: KeyRow | undefined): WatchEvent {
    return new WatchEvent(
      row.deleted ? 'Delete' : 'Put',
      rowToKeyValue(row),
      prev && !prev.deleted ? rowToKeyValue(prev) : undefined,
      row.modRevision,
      row.sub,
    );
  }

  /** The encoded mvccpb.Event, with or without prev_kv. */
  bytes(includePrev: boolean): Buffer {
    if (includePrev && this.prevKv) {
      return (this.withPrev ??= this.encode(true));
    }
    return (this.plain ??= this.encode(false));
  }

  private encode(includePrev: boolean): Buffer {
    const w = new ProtoWriter().varint(1, this.type === 'Delete' ? 1 : 0).bytes(2, encodeKeyValue(this.kv), true);
    if (includePrev && this.prevKv) w.bytes(3, encodeKeyValue(this.prevKv), true);
    return w.finish();
  }
}

export interface WatchResponseFields {
  header: Buffer;
  watchId: string | number;
  created?: boolean;
  canceled?: boolean;
  compactRevision?: number;
  cancelReason?: string;
  events?: Buffer[];
}

/** Encodes an etcdserverpb.WatchResponse from pre-encoded header and events. */
export function encodeWatchResponse(r: WatchResponseFields): Buffer {
  const w = new ProtoWriter()
    .bytes(1, r.header, true)
    .varint(2, r.watchId)
    .varint(3, r.created)
    .varint(4, r.canceled)
    .varint(5, r.compactRevision)
    .bytes(6, r.cancelReason);
  for (const e of r.events ?? []) w.bytes(11, e, true);
  return w.finish();
}

/** Encodes an etcdserverpb.RangeResponse (the hot read path: lists of many keys). */
export function encodeRangeResponse(r: RangeResponse): Buffer {
  const w = new ProtoWriter().bytes(1, encodeHeader(r.header), true);
  for (const kv of r.kvs) w.bytes(2, encodeKeyValue(kv), true);
  return w.varint(3, r.more).varint(4, r.count).finish();
}

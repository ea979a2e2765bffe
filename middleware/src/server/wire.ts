/**
 * The wire format of the hot responses: hand-written protobuf encoding of KeyValue, Event, WatchResponse and
 * RangeResponse, field numbers from etcd's kv.proto and rpc.proto (the other messages go through the proto
 * loader). Each message is sized first and then written into one buffer of exactly that size: a list of 500
 * keys is one allocation, not one per field. A watch event is encoded once and its bytes reused for every
 * watcher.
 */
import type { Int64, KeyValue, RangeResponse, ResponseHeader } from '../mvcc/api.js';
import type { WatchEvent } from '../mvcc/watch-event.js';

// Every field number here is below 16, so every tag is one byte: (field << 3) | wire type.
const VARINT = 0;
const BYTES = 2;

/** A varint to write: a non-negative safe integer as a number, anything larger (or negative) as a uint64. */
type Varint = number | bigint;

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** The proto3 int64/uint64/bool value of a field; 0 is the default and is not written. */
function varintOf(v: Int64 | boolean | undefined): Varint {
  if (typeof v === 'number') return v >= 0 && v <= Number.MAX_SAFE_INTEGER ? v : BigInt.asUintN(64, BigInt(v));
  if (v === undefined || v === false || v === '' || v === '0') return 0;
  if (v === true) return 1;
  const big = BigInt.asUintN(64, BigInt(v));
  return big <= MAX_SAFE ? Number(big) : big;
}

function varintLength(v: Varint): number {
  if (typeof v === 'number') {
    if (v < 0x80) return 1;
    if (v < 0x4000) return 2;
    if (v < 0x200000) return 3;
    if (v < 0x10000000) return 4;
    let n = 4;
    for (let x = Math.floor(v / 0x10000000); x > 0; x = Math.floor(x / 0x80)) n++;
    return n;
  }
  let n = 1;
  for (let x = v; x >= 0x80n; x >>= 7n) n++;
  return n;
}

/** Bytes a varint field takes (none when it holds the default). */
function varintFieldSize(v: Varint): number {
  return v === 0 ? 0 : 1 + varintLength(v);
}

/** Bytes a length-delimited field of `length` bytes takes (none when empty unless `always`). */
function bytesFieldSize(length: number, always = false): number {
  return length === 0 && !always ? 0 : 1 + varintLength(length) + length;
}

/** Writes into a buffer sized in advance; a size mismatch is a bug and throws rather than sends garbage. */
class Out {
  readonly buf: Buffer;
  private pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  private raw(v: Varint): void {
    const buf = this.buf;
    let pos = this.pos;
    if (typeof v === 'number') {
      for (; v > 0x7fffffff; v = Math.floor(v / 0x80)) buf[pos++] = (v % 0x80) | 0x80;
      for (; v >= 0x80; v >>>= 7) buf[pos++] = (v & 0x7f) | 0x80;
      buf[pos++] = v;
    } else {
      for (; v >= 0x80n; v >>= 7n) buf[pos++] = Number(v & 0x7fn) | 0x80;
      buf[pos++] = Number(v);
    }
    this.pos = pos;
  }

  varint(field: number, v: Varint): void {
    if (v === 0) return;
    this.buf[this.pos++] = (field << 3) | VARINT;
    this.raw(v);
  }

  /** The tag and length of a length-delimited field whose body the caller writes next. */
  open(field: number, length: number): void {
    this.buf[this.pos++] = (field << 3) | BYTES;
    this.raw(length);
  }

  bytes(field: number, b: Buffer, always = false): void {
    if (b.length === 0 && !always) return;
    this.open(field, b.length);
    this.pos += b.copy(this.buf, this.pos);
  }

  done(): Buffer {
    if (this.pos !== this.buf.length) throw new Error(`protobuf encoder: wrote ${this.pos} bytes of a ${this.buf.length}-byte message`);
    return this.buf;
  }
}

function keyValueSize(kv: KeyValue): number {
  return (
    bytesFieldSize(kv.key.length) +
    varintFieldSize(varintOf(kv.create_revision)) +
    varintFieldSize(varintOf(kv.mod_revision)) +
    varintFieldSize(varintOf(kv.version)) +
    bytesFieldSize(kv.value.length) +
    varintFieldSize(varintOf(kv.lease))
  );
}

function writeKeyValue(out: Out, kv: KeyValue): void {
  out.bytes(1, kv.key);
  out.varint(2, varintOf(kv.create_revision));
  out.varint(3, varintOf(kv.mod_revision));
  out.varint(4, varintOf(kv.version));
  out.bytes(5, kv.value);
  out.varint(6, varintOf(kv.lease));
}

function headerSize(h: ResponseHeader): number {
  return (
    varintFieldSize(varintOf(h.cluster_id)) +
    varintFieldSize(varintOf(h.member_id)) +
    varintFieldSize(varintOf(h.revision)) +
    varintFieldSize(varintOf(h.raft_term))
  );
}

function writeHeader(out: Out, h: ResponseHeader): void {
  out.varint(1, varintOf(h.cluster_id));
  out.varint(2, varintOf(h.member_id));
  out.varint(3, varintOf(h.revision));
  out.varint(4, varintOf(h.raft_term));
}

export function encodeHeader(h: ResponseHeader): Buffer {
  const out = new Out(headerSize(h));
  writeHeader(out, h);
  return out.done();
}

/** The encoded mvccpb.Event, with or without prev_kv; encoded at most once per variant, then reused. */
export function encodeEvent(e: WatchEvent, includePrev: boolean): Buffer {
  if (includePrev && e.prevKv) return (e.encodedWithPrev ??= writeEvent(e, e.prevKv));
  return (e.encodedPlain ??= writeEvent(e, undefined));
}

function writeEvent(e: WatchEvent, prevKv: KeyValue | undefined): Buffer {
  const type = e.type === 'Delete' ? 1 : 0;
  const kvSize = keyValueSize(e.kv);
  const prevSize = prevKv ? keyValueSize(prevKv) : 0;
  const out = new Out(varintFieldSize(type) + bytesFieldSize(kvSize, true) + (prevKv ? bytesFieldSize(prevSize, true) : 0));
  out.varint(1, type);
  out.open(2, kvSize);
  writeKeyValue(out, e.kv);
  if (prevKv) {
    out.open(3, prevSize);
    writeKeyValue(out, prevKv);
  }
  return out.done();
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

const NO_EVENTS: Buffer[] = [];

/** Encodes an etcdserverpb.WatchResponse from pre-encoded header and events. */
export function encodeWatchResponse(r: WatchResponseFields): Buffer {
  const watchId = varintOf(r.watchId);
  const created = varintOf(r.created);
  const canceled = varintOf(r.canceled);
  const compactRevision = varintOf(r.compactRevision);
  const cancelReason = r.cancelReason ? Buffer.from(r.cancelReason) : undefined;
  const events = r.events ?? NO_EVENTS;
  let size =
    bytesFieldSize(r.header.length, true) +
    varintFieldSize(watchId) +
    varintFieldSize(created) +
    varintFieldSize(canceled) +
    varintFieldSize(compactRevision) +
    (cancelReason ? bytesFieldSize(cancelReason.length) : 0);
  for (const e of events) size += bytesFieldSize(e.length, true);
  const out = new Out(size);
  out.bytes(1, r.header, true);
  out.varint(2, watchId);
  out.varint(3, created);
  out.varint(4, canceled);
  out.varint(5, compactRevision);
  if (cancelReason) out.bytes(6, cancelReason);
  for (const e of events) out.bytes(11, e, true);
  return out.done();
}

/** Encodes an etcdserverpb.RangeResponse (the hot read path: lists of many keys). */
export function encodeRangeResponse(r: RangeResponse): Buffer {
  const hSize = headerSize(r.header);
  const kvSizes = new Array<number>(r.kvs.length);
  let size = bytesFieldSize(hSize, true);
  for (let i = 0; i < r.kvs.length; i++) {
    const s = (kvSizes[i] = keyValueSize(r.kvs[i]!));
    size += bytesFieldSize(s, true);
  }
  const more = varintOf(r.more);
  const count = varintOf(r.count);
  const out = new Out(size + varintFieldSize(more) + varintFieldSize(count));
  out.open(1, hSize);
  writeHeader(out, r.header);
  for (let i = 0; i < r.kvs.length; i++) {
    out.open(2, kvSizes[i]!);
    writeKeyValue(out, r.kvs[i]!);
  }
  out.varint(3, more);
  out.varint(4, count);
  return out.done();
}

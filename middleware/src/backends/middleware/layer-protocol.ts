/**
 * The layer protocol between a parent middleware and a child middleware it uses as a rule backend
 * (docs/architecture.md, "Layers"): the one definition of its service, messages and wire format.
 *
 * A child is another HariKube middleware. The parent does not write to it through the etcd API (the child
 * would number its own revisions): it hands down rows that already carry the parent's global revisions, and
 * the child stores them as they are. So a hierarchy of any depth shares one revision space: a child's rows
 * carry exactly the revisions the parent's clients saw, and reads, history and compaction at a revision R
 * pass through unchanged. The service is `harikube.layer.v1.Layer` on the child's etcd port; an etcd answers
 * it with UNIMPLEMENTED, which is how the parent tells an etcd from a middleware behind an `http(s)://`
 * endpoint.
 *
 * Wire format: a message is a JSON document in which every byte string is replaced by `{"$b": i}`, followed
 * by the byte strings themselves: `u32 json length | json | (u32 length | bytes)*` (big endian). Keys and
 * values thus travel as raw bytes (no base64 growth: a handed-down revision fits the child's request limit).
 */
import type * as grpc from '@grpc/grpc-js';
import type { ChangeRow, CompactResult, KeyRow, RangeQuery } from '../backend.js';

export const LAYER_SERVICE = 'harikube.layer.v1.Layer';

/**
 * Most bytes of rows the parent hands down in one call (a write's whole revisions, a migration's copied
 * rows): below the child's request limit. A single larger row goes alone.
 */
export const MAX_HANDED_DOWN_BYTES = 1024 * 1024;

/** What a row counts against MAX_HANDED_DOWN_BYTES: its key and value, and room for the rest. */
export function handedDownBytes(row: KeyRow): number {
  return row.key.length + row.value.length + 100;
}

/** gRPC metadata naming the parent (its cluster ID) on every call that changes the child. */
export const PARENT_METADATA = 'harikube-parent';

/** What a middleware answers to `Hello`: who it is and whose child it is. */
export interface HelloResponse {
  /** The child's own cluster ID. */
  clusterId: string;
  /** Cluster ID of the parent that owns it (its revision space); empty while it has none. */
  parent: string;
  /** Highest revision stored in the child (0 when empty). */
  maxRevision: number;
  /**
   * True when the child holds data an older parent wrote through its etcd adapter (values in "harikube/v1"
   * envelopes, `harikube/revision/` keys): it has its own revision space and cannot become a child.
   */
  enveloped: boolean;
  /**
   * Why the child cannot be the source or target of the parent's online migration (its own storage is
   * routed across backends, or cannot copy rows at their revisions); empty when it can. Absent from a child
   * of a version without the migration calls: it cannot either.
   */
  movesRefused?: string;
}

export interface WriteRequest {
  rows: KeyRow[];
  /** Meta values the parent sets (`owner_cluster_id`: the claim that puts the child in child mode). */
  meta: { name: string; value: Buffer }[];
  /**
   * Keys the parent's next write transaction will read: the child answers their newest rows (tombstones
   * included, null: none) as they are once this Write committed, which saves the next batch's `Latest`.
   */
  readAhead?: Buffer[];
}

export interface WriteResponse {
  /** The newest rows of `WriteRequest.readAhead`, in its order; absent from a child of an older version. */
  readAhead?: (KeyRow | null)[];
}

export interface CompactRequest {
  revision: number;
  batchSize: number;
  /** ms epoch */
  deadline: number;
}

/** Request and response of each method. */
export interface LayerMethods {
  Hello: [Record<string, never>, HelloResponse];
  Range: [RangeQuery, { rows: KeyRow[] }];
  /**
   * The newest row of each key (null: none), for a write transaction's reads: with `tombstones`, a
   * tombstone too (`WriteTxn.latest`: while keys move, the tombstone in the target is what hides a live
   * copy still in the source); without (a parent of an older version), the live newest row only.
   */
  Latest: [{ keys: Buffer[]; tombstones?: boolean }, { rows: (KeyRow | null)[] }];
  Count: [{ start: Buffer; end?: Buffer; revision: number }, { count: number }];
  Changes: [{ from: number; to: number; limit: number }, { rows: ChangeRow[] }];
  MaxRevision: [Record<string, never>, { revision: number }];
  GetMeta: [{ name: string }, { value?: Buffer }];
  LeasedKeys: [Record<string, never>, { keys: { key: Buffer; lease: string }[] }];
  SizeBytes: [Record<string, never>, { bytes: number }];
  Write: [WriteRequest, WriteResponse];
  Compact: [CompactRequest, CompactResult];
  Revert: [{ from: number; to: number }, Record<string, never>];
  Recover: [Record<string, never>, Record<string, never>];
  // online migration (backends/movable.ts `KeyMoves`, served by the child's own storage)
  RangeWithTombstones: [RangeQuery, { rows: KeyRow[] }];
  History: [{ start: Buffer; end: Buffer; limitRows: number }, { rows: KeyRow[] }];
  CopyIn: [{ rows: KeyRow[] }, { stored: number }];
  DropOut: [{ keys: Buffer[]; upTo: number }, { deleted: number }];
}

export type LayerMethod = keyof LayerMethods;

const METHODS: LayerMethod[] = ['Hello', 'Range', 'Latest', 'Count', 'Changes', 'MaxRevision', 'GetMeta', 'LeasedKeys', 'SizeBytes', 'Write', 'Compact', 'Revert', 'Recover', 'RangeWithTombstones', 'History', 'CopyIn', 'DropOut'];

/**
 * `value` with every byte string replaced by its `{"$b": i}` reference (appended to `blobs`). A walk of our
 * own, not a JSON.stringify replacer: stringify calls a Buffer's toJSON (an array of every byte) before any
 * replacer sees it, which made encoding a batch of rows cost more than sending it.
 */
function withReferences(value: unknown, blobs: Buffer[]): unknown {
  if (Buffer.isBuffer(value)) {
    blobs.push(value);
    return { $b: blobs.length - 1 };
  }
  if (Array.isArray(value)) return value.map((v) => withReferences(v, blobs));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(value)) out[k] = withReferences((value as Record<string, unknown>)[k], blobs);
  return out;
}

/** Encodes a message (see the wire format above). */
export function encodeMessage(msg: unknown): Buffer {
  const blobs: Buffer[] = [];
  const json = JSON.stringify(withReferences(msg, blobs));
  const jsonBytes = Buffer.byteLength(json);
  let size = 4 + jsonBytes;
  for (const b of blobs) size += 4 + b.length;
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32BE(jsonBytes, 0);
  let at = 4 + out.write(json, 4);
  for (const b of blobs) {
    out.writeUInt32BE(b.length, at);
    at += 4 + b.copy(out, at + 4);
  }
  return out;
}

/** `value` with every `{"$b": i}` reference replaced by its byte string (the inverse of withReferences). */
function withBlobs(value: unknown, blobs: Buffer[]): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = withBlobs(value[i], blobs);
    return value;
  }
  const o = value as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 1 && keys[0] === '$b') {
    const b = blobs[o.$b as number];
    if (!b) throw new Error('layer protocol: reference to a missing byte string');
    return b;
  }
  for (const k of keys) o[k] = withBlobs(o[k], blobs);
  return o;
}

/** Decodes a message; throws on a malformed one (naming what is wrong). */
export function decodeMessage<T>(buf: Buffer): T {
  if (buf.length < 4) throw new Error('layer protocol: message shorter than its header');
  const n = buf.readUInt32BE(0);
  if (4 + n > buf.length) throw new Error('layer protocol: JSON part longer than the message');
  const blobs: Buffer[] = [];
  for (let at = 4 + n; at < buf.length; ) {
    if (at + 4 > buf.length) throw new Error('layer protocol: truncated byte-string length');
    const len = buf.readUInt32BE(at);
    if (at + 4 + len > buf.length) throw new Error('layer protocol: truncated byte string');
    blobs.push(buf.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  return withBlobs(JSON.parse(buf.toString('utf8', 4, 4 + n)), blobs) as T;
}

/** The service definition, for the child's server and the parent's client alike. */
export const layerServiceDefinition: grpc.ServiceDefinition = Object.fromEntries(
  METHODS.map((m) => [
    m,
    {
      path: `/${LAYER_SERVICE}/${m}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: encodeMessage,
      requestDeserialize: decodeMessage,
      responseSerialize: encodeMessage,
      responseDeserialize: decodeMessage,
      originalName: m,
    },
  ]),
);

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
  Write: [WriteRequest, Record<string, never>];
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

/** Encodes a message (see the wire format above). */
export function encodeMessage(msg: unknown): Buffer {
  const blobs: Buffer[] = [];
  const json = Buffer.from(
    JSON.stringify(msg, function (this: Record<string, unknown>, k: string, v: unknown) {
      // JSON.stringify calls toJSON first: look at the holder's own property to see the Buffer
      const raw = k === '' ? v : this[k];
      if (Buffer.isBuffer(raw)) {
        blobs.push(raw);
        return { $b: blobs.length - 1 };
      }
      return v;
    }),
  );
  const parts: Buffer[] = [u32(json.length), json];
  for (const b of blobs) parts.push(u32(b.length), b);
  return Buffer.concat(parts);
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
  return JSON.parse(buf.subarray(4, 4 + n).toString(), (_k, v: unknown) => {
    if (v && typeof v === 'object' && '$b' in v && Object.keys(v).length === 1) {
      const b = blobs[(v as { $b: number }).$b];
      if (!b) throw new Error('layer protocol: reference to a missing byte string');
      return b;
    }
    return v;
  }) as T;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
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

/**
 * Secrets as kube-apiserver writes them to etcd, for tests that plant a Secret in the middleware's store
 * without a kube-apiserver (the middleware only decodes them: middleware/src/topology/secret-codec.ts).
 * Written from the wire format and the field numbers of k8s.io/api core/v1 generated.proto, independently of
 * the decoder, so a test that decodes these bytes checks the decoder against the format, not against itself.
 */
import type { StoredSecret } from '../../middleware/src/topology/secret-codec.js';

/** The magic prefix of kube-apiserver's protobuf storage encoding. */
const PROTOBUF_PREFIX = Buffer.from('k8s\0', 'latin1');
const VARINT = 0;
const LENGTH_DELIMITED = 2;

export interface SecretToStore extends Omit<StoredSecret, 'data'> {
  data: Map<string, Buffer | string> | Record<string, Buffer | string>;
}

function varint(value: number): Buffer {
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`cannot encode ${value} as an unsigned varint`);
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Buffer.from(out);
}

/** Byte order of UTF-8 keys, as Go's sort.Strings orders map keys (not JavaScript's UTF-16 order). */
function inKeyOrder<T>(entries: [string, T][]): [string, T][] {
  return entries.sort(([a], [b]) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
}

class Writer {
  private readonly parts: Buffer[] = [];

  varintField(number: number, value: number): this {
    this.parts.push(varint(number * 8 + VARINT), varint(value));
    return this;
  }

  bytesField(number: number, value: Buffer | string): this {
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    this.parts.push(varint(number * 8 + LENGTH_DELIMITED), varint(bytes.length), bytes);
    return this;
  }

  /** A `map<string, string|bytes>` field: one entry per key, keys sorted as Go's sort.Strings does. */
  mapField(number: number, map: Iterable<[string, Buffer | string]>): this {
    for (const [k, v] of inKeyOrder([...map])) this.bytesField(number, new Writer().bytesField(1, k).bytesField(2, v).finish());
    return this;
  }

  finish(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function entriesOf(data: SecretToStore['data']): [string, Buffer][] {
  const list = data instanceof Map ? [...data.entries()] : Object.entries(data);
  return list.map(([k, v]) => [k, typeof v === 'string' ? Buffer.from(v, 'utf8') : v]);
}

/**
 * The bytes kube-apiserver writes to etcd for this Secret (protobuf storage): the same fields, in the same
 * order, with the same always-present empty fields as Go's generated marshalers.
 */
export function encodeStoredSecret(secret: SecretToStore): Buffer {
  const seconds = Math.floor((secret.creationTimestamp?.getTime() ?? 0) / 1000);
  const meta = new Writer()
    .bytesField(1, secret.name)
    .bytesField(2, '') // generateName
    .bytesField(3, secret.namespace)
    .bytesField(4, '') // selfLink
    .bytesField(5, secret.uid ?? '')
    .bytesField(6, '') // resourceVersion: never stored, etcd's mod revision is the version
    .varintField(7, 0) // generation
    .bytesField(8, secret.creationTimestamp ? new Writer().varintField(1, seconds).varintField(2, 0).finish() : Buffer.alloc(0))
    .mapField(11, Object.entries(secret.labels ?? {}))
    .mapField(12, Object.entries(secret.annotations ?? {}));
  for (const f of secret.finalizers ?? []) meta.bytesField(14, f);

  const body = new Writer()
    .bytesField(1, meta.finish())
    .mapField(2, entriesOf(secret.data))
    .bytesField(3, secret.type ?? 'Opaque')
    .finish();
  const envelope = new Writer()
    .bytesField(1, new Writer().bytesField(1, 'v1').bytesField(2, 'Secret').finish())
    .bytesField(2, body)
    .bytesField(3, '') // contentEncoding
    .bytesField(4, '') // contentType
    .finish();
  return Buffer.concat([PROTOBUF_PREFIX, envelope]);
}

/** The JSON kube-apiserver writes with `--storage-media-type=application/json`. */
export function encodeStoredSecretJson(secret: SecretToStore): Buffer {
  const metadata: Record<string, unknown> = { name: secret.name, namespace: secret.namespace };
  if (secret.uid) metadata.uid = secret.uid;
  if (secret.creationTimestamp) metadata.creationTimestamp = secret.creationTimestamp.toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (secret.labels) metadata.labels = secret.labels;
  if (secret.annotations) metadata.annotations = secret.annotations;
  if (secret.finalizers?.length) metadata.finalizers = secret.finalizers;
  const data = Object.fromEntries(inKeyOrder(entriesOf(secret.data)).map(([k, v]) => [k, v.toString('base64')]));
  return Buffer.from(JSON.stringify({ kind: 'Secret', apiVersion: 'v1', metadata, data, type: secret.type ?? 'Opaque' }) + '\n');
}

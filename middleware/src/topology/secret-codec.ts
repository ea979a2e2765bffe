/**
 * Kubernetes Secrets as kube-apiserver stores them in etcd, so the middleware's `secret://` source can read
 * its topology straight from the default backend (no Kubernetes client, works while the API server starts).
 *
 * kube-apiserver's default storage media type is protobuf: the bytes `k8s\0`, then a `runtime.Unknown`
 * { typeMeta = 1 { apiVersion = 1, kind = 2 }, raw = 2, contentEncoding = 3, contentType = 4 } whose `raw` is
 * a `core/v1.Secret` { metadata = 1 (ObjectMeta), data = 2 (map<string, bytes>), type = 3, stringData = 4,
 * immutable = 5 }. ObjectMeta: name = 1, generateName = 2, namespace = 3, selfLink = 4, uid = 5,
 * resourceVersion = 6, generation = 7, creationTimestamp = 8 (Time { seconds = 1, nanos = 2 }),
 * deletionTimestamp = 9, deletionGracePeriodSeconds = 10, labels = 11, annotations = 12,
 * ownerReferences = 13, finalizers = 14, managedFields = 17. Map entries are { key = 1, value = 2 }.
 * (Field numbers from k8s.io/api core/v1 and k8s.io/apimachinery generated.proto.)
 * Clusters configured with `--storage-media-type=application/json` store plain JSON instead; both decode.
 * (Tests write Secrets the way kube-apiserver does with test/support/stored-secret.ts.)
 */

/** The magic prefix of kube-apiserver's protobuf storage encoding. */
const PROTOBUF_PREFIX = Buffer.from([0x6b, 0x38, 0x73, 0x00]);
/** The prefix kube-apiserver writes in front of values encrypted at rest (EncryptionConfiguration). */
const ENCRYPTED_PREFIX = Buffer.from('k8s:enc:');

/** A Secret as read from storage: the fields the topology source uses. */
export interface StoredSecret {
  name: string;
  namespace: string;
  type?: string;
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  /** Whole seconds, as the API server keeps them. */
  creationTimestamp?: Date;
  /** Data keys in byte order of the key (the order the topology documents apply in). */
  data: Map<string, Buffer>;
}

export class SecretDecodeError extends Error {
  constructor(problem: string) {
    super(`stored Secret cannot be decoded: ${problem}`);
    this.name = 'SecretDecodeError';
  }
}

// ---- protobuf wire format: the little of it a Secret needs ----

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

interface Field {
  number: number;
  wireType: number;
  /** Varint value (wire type 0). */
  value: number;
  /** Payload (wire type 2). */
  bytes: Buffer;
}

/** Reads one varint at `pos`; returns [value, next position]. Exact up to 2^53. */
function readVarint(buf: Buffer, pos: number, where: string): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new SecretDecodeError(`${where}: truncated varint`);
    const b = buf[pos++]!;
    value += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) return [value, pos];
    scale *= 128;
  }
  throw new SecretDecodeError(`${where}: varint longer than 10 bytes`);
}

/** The fields of one message, in wire order (unknown fields are kept; callers pick what they need). */
function readFields(buf: Buffer, where: string): Field[] {
  const fields: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [tag, afterTag] = readVarint(buf, pos, where);
    pos = afterTag;
    const number = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (number === 0) throw new SecretDecodeError(`${where}: field number 0 at byte ${pos}`);
    let value = 0;
    let bytes: Buffer = Buffer.alloc(0);
    switch (wireType) {
      case VARINT:
        [value, pos] = readVarint(buf, pos, where);
        break;
      case FIXED64:
        pos += 8;
        break;
      case FIXED32:
        pos += 4;
        break;
      case LENGTH_DELIMITED: {
        const [len, start] = readVarint(buf, pos, where);
        if (start + len > buf.length) {
          throw new SecretDecodeError(`${where}: field ${number} claims ${len} bytes, only ${buf.length - start} left`);
        }
        bytes = buf.subarray(start, start + len);
        pos = start + len;
        break;
      }
      default:
        throw new SecretDecodeError(`${where}: unsupported wire type ${wireType} for field ${number}`);
    }
    if (pos > buf.length) throw new SecretDecodeError(`${where}: field ${number} runs past the end`);
    fields.push({ number, wireType, value, bytes });
  }
  return fields;
}

function mapEntry(entry: Buffer, where: string): [string, Buffer] {
  let key = '';
  let value: Buffer = Buffer.alloc(0);
  for (const f of readFields(entry, where)) {
    if (f.number === 1 && f.wireType === LENGTH_DELIMITED) key = f.bytes.toString('utf8');
    if (f.number === 2 && f.wireType === LENGTH_DELIMITED) value = f.bytes;
  }
  return [key, value];
}

/** Byte order of UTF-8 keys (what Go's sort.Strings and etcd use), not JavaScript's UTF-16 order. */
function sortedByKey<T>(entries: [string, T][]): [string, T][] {
  return entries.sort(([a], [b]) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
}

// ---- decoding ----

/** Decodes a Secret value read from etcd (protobuf with the `k8s\0` envelope, or JSON). */
export function decodeStoredSecret(value: Uint8Array): StoredSecret {
  const buf = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (buf.subarray(0, ENCRYPTED_PREFIX.length).equals(ENCRYPTED_PREFIX)) {
    const provider = buf.subarray(0, 64).toString('latin1').split(':').slice(2, 4).join(':');
    throw new SecretDecodeError(
      `it is encrypted at rest by kube-apiserver (provider ${provider}); exclude this Secret's resource from the ` +
        'EncryptionConfiguration or use a file:// or http(s):// topology source',
    );
  }
  if (buf.subarray(0, PROTOBUF_PREFIX.length).equals(PROTOBUF_PREFIX)) return decodeProtobuf(buf.subarray(PROTOBUF_PREFIX.length));
  const first = buf.toString('utf8', 0, Math.min(buf.length, 64)).trimStart();
  if (first.startsWith('{')) return decodeJson(buf);
  throw new SecretDecodeError('it is neither protobuf (k8s\\0 prefix) nor JSON');
}

function decodeProtobuf(envelope: Buffer): StoredSecret {
  let apiVersion = '';
  let kind = '';
  let raw: Buffer | undefined;
  let contentEncoding = '';
  for (const f of readFields(envelope, 'runtime.Unknown')) {
    if (f.number === 1 && f.wireType === LENGTH_DELIMITED) {
      for (const t of readFields(f.bytes, 'runtime.Unknown.typeMeta')) {
        if (t.number === 1 && t.wireType === LENGTH_DELIMITED) apiVersion = t.bytes.toString('utf8');
        if (t.number === 2 && t.wireType === LENGTH_DELIMITED) kind = t.bytes.toString('utf8');
      }
    }
    if (f.number === 2 && f.wireType === LENGTH_DELIMITED) raw = f.bytes;
    if (f.number === 3 && f.wireType === LENGTH_DELIMITED) contentEncoding = f.bytes.toString('utf8');
  }
  if (kind !== 'Secret' || apiVersion !== 'v1') {
    throw new SecretDecodeError(`it holds a ${apiVersion || '(no apiVersion)'} ${kind || '(no kind)'}, not a v1 Secret`);
  }
  if (contentEncoding) throw new SecretDecodeError(`content encoding "${contentEncoding}" is not supported`);
  if (!raw) throw new SecretDecodeError('the envelope has no raw object');

  const secret: StoredSecret = { name: '', namespace: '', data: new Map() };
  const data: [string, Buffer][] = [];
  for (const f of readFields(raw, 'v1.Secret')) {
    if (f.wireType !== LENGTH_DELIMITED) continue; // immutable (5) is the only varint; not needed here
    if (f.number === 1) decodeObjectMeta(f.bytes, secret);
    else if (f.number === 2) data.push(mapEntry(f.bytes, 'v1.Secret.data'));
    else if (f.number === 3) secret.type = f.bytes.toString('utf8');
  }
  secret.data = new Map(sortedByKey(data));
  if (!secret.name) throw new SecretDecodeError('metadata.name is missing');
  return secret;
}

function decodeObjectMeta(buf: Buffer, into: StoredSecret): void {
  const labels: Record<string, string> = {};
  const annotations: Record<string, string> = {};
  const finalizers: string[] = [];
  for (const f of readFields(buf, 'v1.Secret.metadata')) {
    if (f.wireType !== LENGTH_DELIMITED) continue;
    const text = () => f.bytes.toString('utf8');
    switch (f.number) {
      case 1:
        into.name = text();
        break;
      case 3:
        into.namespace = text();
        break;
      case 5:
        if (f.bytes.length) into.uid = text();
        break;
      case 8: {
        const seconds = readFields(f.bytes, 'v1.Secret.metadata.creationTimestamp').find((t) => t.number === 1);
        if (seconds) into.creationTimestamp = new Date(seconds.value * 1000);
        break;
      }
      case 11: {
        const [k, v] = mapEntry(f.bytes, 'v1.Secret.metadata.labels');
        labels[k] = v.toString('utf8');
        break;
      }
      case 12: {
        const [k, v] = mapEntry(f.bytes, 'v1.Secret.metadata.annotations');
        annotations[k] = v.toString('utf8');
        break;
      }
      case 14:
        finalizers.push(text());
        break;
    }
  }
  if (Object.keys(labels).length) into.labels = labels;
  if (Object.keys(annotations).length) into.annotations = annotations;
  if (finalizers.length) into.finalizers = finalizers;
}

function decodeJson(buf: Buffer): StoredSecret {
  let obj: any;
  try {
    obj = JSON.parse(buf.toString('utf8'));
  } catch (e) {
    throw new SecretDecodeError(`it is not valid JSON: ${(e as Error).message}`);
  }
  if (obj?.kind !== 'Secret' || obj?.apiVersion !== 'v1') {
    throw new SecretDecodeError(`it holds a ${obj?.apiVersion ?? '(no apiVersion)'} ${obj?.kind ?? '(no kind)'}, not a v1 Secret`);
  }
  const meta = obj.metadata ?? {};
  if (typeof meta.name !== 'string' || !meta.name) throw new SecretDecodeError('metadata.name is missing');
  const data: [string, Buffer][] = Object.entries((obj.data ?? {}) as Record<string, unknown>).map(([k, v]) => {
    if (typeof v !== 'string') throw new SecretDecodeError(`data key "${k}" is not a base64 string`);
    return [k, Buffer.from(v, 'base64')];
  });
  const secret: StoredSecret = { name: meta.name, namespace: meta.namespace ?? '', data: new Map(sortedByKey(data)) };
  if (typeof obj.type === 'string') secret.type = obj.type;
  if (typeof meta.uid === 'string') secret.uid = meta.uid;
  if (meta.labels) secret.labels = { ...meta.labels };
  if (meta.annotations) secret.annotations = { ...meta.annotations };
  if (Array.isArray(meta.finalizers) && meta.finalizers.length) secret.finalizers = [...meta.finalizers];
  if (typeof meta.creationTimestamp === 'string') secret.creationTimestamp = new Date(meta.creationTimestamp);
  return secret;
}

/**
 * Secrets as kube-apiserver stores them in etcd: protobuf with the `k8s\0` envelope (bytes built here by hand
 * from the wire format and the field numbers of generated.proto), and JSON. The encoders other tests plant
 * Secrets with (test/support/stored-secret.ts) are held to the same hand-built bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeStoredSecret, SecretDecodeError } from '../../middleware/src/topology/secret-codec.js';
import { encodeStoredSecret, encodeStoredSecretJson } from '../support/stored-secret.js';

/** Base-128 varint, least significant group first, high bit = more bytes follow. */
function varint(n: number): number[] {
  const out: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 0x80)) out.push((n % 0x80) | 0x80);
  return [...out, n];
}

/** A length-delimited field: tag (field << 3 | 2), varint length, bytes. */
function ld(field: number, payload: Buffer | string): Buffer {
  const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return Buffer.concat([Buffer.from([...varint((field << 3) | 2), ...varint(bytes.length)]), bytes]);
}
const entry = (field: number, k: string, v: string) => ld(field, Buffer.concat([ld(1, k), ld(2, v)]));

test('decodes a protobuf Secret built byte by byte from the wire format', () => {
  const meta = Buffer.concat([
    ld(1, 'topology-config'), // name
    ld(3, 'harikube'), // namespace
    ld(5, 'c0ffee-uid'), // uid
    Buffer.from([0x38, 0x03]), // generation = 3 (varint)
    ld(8, Buffer.from([0x08, 0x80, 0xe2, 0xcf, 0xaa, 0x06, 0x10, 0x00])), // creationTimestamp {seconds = 1700000000, nanos = 0}
    entry(11, 'app.kubernetes.io/managed-by', 'harikube-topology-operator'), // labels
    ld(14, 'harikube.info/topology-secret'), // finalizers
    Buffer.from([0x8a, 0x01, 0x00]), // managedFields (17: tag 17 << 3 | 2 = 0x8a 0x01), empty: a field to skip
  ]);
  assert.ok(meta.length > 127, 'the metadata needs a two-byte length, so multi-byte varints are exercised');
  const secret = Buffer.concat([
    ld(1, meta),
    entry(2, '0002-b.two.yaml', 'backends: [two]\n'), // data, deliberately out of order
    entry(2, '0001-a.one.yaml', 'backends: [one]\n'),
    ld(3, 'Opaque'), // type
    Buffer.from([0x28, 0x01]), // immutable = true
  ]);
  const stored = Buffer.concat([
    Buffer.from('k8s\0', 'latin1'),
    ld(1, Buffer.concat([ld(1, 'v1'), ld(2, 'Secret')])), // typeMeta
    ld(2, secret), // raw
    ld(3, ''), // contentEncoding
    ld(4, ''), // contentType
  ]);
  const decoded = decodeStoredSecret(stored);
  assert.equal(decoded.name, 'topology-config');
  assert.equal(decoded.namespace, 'harikube');
  assert.equal(decoded.uid, 'c0ffee-uid');
  assert.equal(decoded.type, 'Opaque');
  assert.deepEqual(decoded.labels, { 'app.kubernetes.io/managed-by': 'harikube-topology-operator' });
  assert.deepEqual(decoded.finalizers, ['harikube.info/topology-secret']);
  assert.equal(decoded.creationTimestamp?.getTime(), 1_700_000_000_000);
  assert.deepEqual([...decoded.data.keys()], ['0001-a.one.yaml', '0002-b.two.yaml'], 'data ordered by key');
  assert.equal(decoded.data.get('0001-a.one.yaml')!.toString(), 'backends: [one]\n');
});

test('encodes exactly the bytes kube-apiserver writes (always-present empty fields included)', () => {
  const expected = Buffer.concat([
    Buffer.from([0x6b, 0x38, 0x73, 0x00]),
    ld(1, Buffer.concat([ld(1, 'v1'), ld(2, 'Secret')])),
    ld(
      2,
      Buffer.concat([
        ld(
          1,
          Buffer.concat([
            ld(1, 'ts'), // name
            ld(2, ''), // generateName
            ld(3, 'hk'), // namespace
            ld(4, ''), // selfLink
            ld(5, ''), // uid
            ld(6, ''), // resourceVersion
            Buffer.from([0x38, 0x00]), // generation
            ld(8, ''), // creationTimestamp (zero time: empty message)
            entry(11, 'l', 'v'), // labels
          ]),
        ),
        entry(2, 'a', '1'),
        entry(2, 'b', ''),
        ld(3, 'Opaque'),
      ]),
    ),
    ld(3, ''),
    ld(4, ''),
  ]);
  const actual = encodeStoredSecret({ name: 'ts', namespace: 'hk', labels: { l: 'v' }, data: { b: Buffer.alloc(0), a: '1' } });
  assert.equal(actual.toString('hex'), expected.toString('hex'));
});

test('protobuf and JSON encodings round-trip, keys in byte order', () => {
  const secret = {
    name: 'topology-config',
    namespace: 'harikube',
    uid: '0d3f',
    type: 'Opaque',
    labels: { a: 'b' },
    annotations: { 'harikube.info/sources': '[]' },
    finalizers: ['x/y'],
    creationTimestamp: new Date('2025-03-04T05:06:07Z'),
    data: new Map<string, Buffer>([
      ['é-last', Buffer.from('3')],
      ['Z-upper', Buffer.from('2')],
      ['0001-a.yaml', Buffer.from([0, 255, 1])],
    ]),
  };
  for (const encode of [encodeStoredSecret, encodeStoredSecretJson]) {
    const decoded = decodeStoredSecret(encode(secret));
    assert.deepEqual([...decoded.data.keys()], ['0001-a.yaml', 'Z-upper', 'é-last']);
    assert.deepEqual(decoded.data.get('0001-a.yaml'), Buffer.from([0, 255, 1]));
    assert.equal(decoded.name, secret.name);
    assert.equal(decoded.namespace, secret.namespace);
    assert.equal(decoded.uid, secret.uid);
    assert.deepEqual(decoded.labels, secret.labels);
    assert.deepEqual(decoded.annotations, secret.annotations);
    assert.deepEqual(decoded.finalizers, secret.finalizers);
    assert.equal(decoded.creationTimestamp?.toISOString(), '2025-03-04T05:06:07.000Z');
  }
});

test('decodes a JSON-stored Secret as kube-apiserver writes it', () => {
  const json = '{"kind":"Secret","apiVersion":"v1","metadata":{"name":"t","namespace":"n","uid":"u","creationTimestamp":"2025-01-01T00:00:00Z"},"data":{"k":"dmFsdWU="},"type":"Opaque"}\n';
  const decoded = decodeStoredSecret(Buffer.from(json));
  assert.equal(decoded.data.get('k')!.toString(), 'value');
  assert.equal(decoded.type, 'Opaque');
});

test('what is not a readable Secret fails with a reason', () => {
  const err = (bytes: Buffer, re: RegExp) =>
    assert.throws(() => decodeStoredSecret(bytes), (e: Error) => e instanceof SecretDecodeError && re.test(e.message));
  err(Buffer.from('k8s:enc:aescbc:v1:key1:\x00\x01'), /encrypted at rest by kube-apiserver \(provider aescbc:v1\)/);
  const cm = Buffer.concat([Buffer.from('k8s\0', 'latin1'), ld(1, Buffer.concat([ld(1, 'v1'), ld(2, 'ConfigMap')])), ld(2, '')]);
  err(cm, /holds a v1 ConfigMap, not a v1 Secret/);
  const good = encodeStoredSecret({ name: 'a', namespace: 'b', data: { k: 'v' } });
  err(good.subarray(0, good.length - 9), /truncated|claims \d+ bytes/);
  err(Buffer.from('{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"x"}}'), /not a v1 Secret/);
  err(Buffer.from('garbage'), /neither protobuf/);
});

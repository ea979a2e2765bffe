/** TOPOLOGY_CONFIG parsing (`createTopologySource`) and the content hash change detection uses. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import type { Logger } from '../../middleware/src/log.js';
import {
  createTopologySource,
  FileTopologySource,
  HttpTopologySource,
  SecretTopologySource,
  documentContentHash,
  type StoredKeyReader,
} from '../../middleware/src/topology/source/index.js';

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };
const keys: StoredKeyReader = {
  get: async () => ({ value: undefined, revision: 1 }),
  watch: () => () => {},
};

test('file sources: file://relative, file:///absolute and a bare path', () => {
  const rel = createTopologySource('file://./conf/t.yaml', { logger: silent });
  assert.ok(rel instanceof FileTopologySource);
  assert.equal(rel.description, `file://${path.resolve('conf/t.yaml')}`);
  assert.equal(createTopologySource('file:///etc/topology.yaml', { logger: silent }).description, 'file:///etc/topology.yaml');
  assert.equal(createTopologySource('/etc/topology.yaml', { logger: silent }).description, 'file:///etc/topology.yaml');
  assert.equal(createTopologySource('topology.yaml', { logger: silent }).description, `file://${path.resolve('topology.yaml')}`);
  assert.equal(createTopologySource('  file:///etc/t.yaml \n', { logger: silent }).description, 'file:///etc/t.yaml');
});

test('http(s) sources are described without credentials', () => {
  const s = createTopologySource('https://ci:hunter2@config.example.com/topology.yaml?access_token=abc123', { logger: silent });
  assert.ok(s instanceof HttpTopologySource);
  assert.equal(s.description, 'https://***@config.example.com/topology.yaml?access_token=***');
  assert.ok(createTopologySource('HTTP://h/t.yaml', { logger: silent }) instanceof HttpTopologySource);
});

test('secret sources need namespace/name and the store', () => {
  const s = createTopologySource('secret://harikube/topology-config', { keys, logger: silent });
  assert.ok(s instanceof SecretTopologySource);
  assert.equal(s.description, 'secret://harikube/topology-config');
  assert.equal(s.key.toString(), '/registry/secrets/harikube/topology-config');
  assert.throws(() => createTopologySource('secret://harikube/topology-config', { logger: silent }), /needs the middleware's store/);
  assert.throws(() => createTopologySource('secret://harikube', { keys }), /must be secret:\/\/namespace\/name/);
  assert.throws(() => createTopologySource('secret://a/b/c', { keys }), /must be secret:\/\/namespace\/name/);
  assert.throws(() => createTopologySource('secret://Harikube/x', { keys }), /"Harikube" is not a valid namespace/);
  assert.throws(() => createTopologySource('secret://harikube/x_y', { keys }), /"x_y" is not a valid Secret name/);
});

test('anything else is refused with what to write instead, without echoing credentials', () => {
  assert.throws(() => createTopologySource('', {}), /TOPOLOGY_CONFIG is empty; use file:\/\/path, http\(s\):\/\/url or secret:\/\/namespace\/name/);
  assert.throws(() => createTopologySource('ftp://u:pw-secret@host/t.yaml', {}), (e: unknown) => {
    const m = (e as Error).message;
    return /unknown scheme "ftp"/.test(m) && /use file:\/\//.test(m) && !m.includes('pw-secret');
  });
  assert.throws(() => createTopologySource('secret:harikube/topology-config', { keys }), /lacks "\/\/" after "secret:"/);
  assert.throws(() => createTopologySource('file://', {}), /names no file/);
  assert.throws(() => createTopologySource('http://', {}), /is not a valid URL/);
  assert.throws(() => createTopologySource('https://h/t.yaml', { pollIntervalMs: 0 }), /pollIntervalMs must be a positive number/);
});

test('the content hash ignores key order and formatting, not content', () => {
  const a = documentContentHash({ backends: [{ name: 'a', endpoint: 'sqlite://./a.db', prefix: { prefix: 'a' } }] });
  const b = documentContentHash({ backends: [{ prefix: { prefix: 'a' }, endpoint: 'sqlite://./a.db', name: 'a' }] });
  const c = documentContentHash({ backends: [{ name: 'a', endpoint: 'sqlite://./a.db', prefix: { prefix: 'b' } }] });
  assert.equal(a, b);
  assert.notEqual(a, c);
  assert.notEqual(a, documentContentHash({ backends: [{ name: 'a', endpoint: 'sqlite://./a.db', prefix: { prefix: 'a' } }] }, 'tls digest'));
});

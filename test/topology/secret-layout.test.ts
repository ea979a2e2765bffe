/**
 * The topology Secret's layout is one definition: what both writers produce (the operator's per-TopologyConfig
 * documents, the compiler's `topology.yaml` with TLS files) is what the secret:// reader takes, in the order
 * the writers meant.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { compileTopology } from '../../middleware/src/topology/compile.js';
import type { BackendRule } from '../../middleware/src/topology/schema.js';
import { isDocumentKey, isFileKey, splitSecretData, topologyConfigDocument, topologyConfigKey, TOPOLOGY_DOCUMENT_KEY } from '../../middleware/src/topology/secret-layout.js';
import { readTopologySecret } from '../../middleware/src/topology/source/secret-source.js';
import { encodeStoredSecret } from '../support/stored-secret.js';

const stored = (data: Record<string, string>) => encodeStoredSecret({ name: 'topology-config', namespace: 'harikube', data });

test("the operator's keys are documents that sort in TopologyConfig order, and the reader merges them in that order", () => {
  const count = 12;
  const keys = Array.from({ length: count }, (_, i) => topologyConfigKey(i, count, `ns-${count - i}`, `r${i}`));
  for (const k of keys) assert.ok(isDocumentKey(k) && isFileKey(k), `${k} is a valid document key`);
  const longEndpoint = `postgres://user:pw@${'a'.repeat(90)}.example:5432/db`;
  const data = Object.fromEntries(
    keys.map((key, i) => {
      const rules: BackendRule[] = [{ name: `rule-${i}`, prefix: { prefix: `r${i}` }, endpoint: i === 0 ? longEndpoint : `sqlite:///data/r${i}.db` }];
      return [key, topologyConfigDocument({ namespace: `ns-${count - i}`, name: `r${i}`, generation: 1, position: i + 1 }, rules)];
    }),
  );
  assert.deepEqual(splitSecretData(Object.entries(data).reverse()).documents.map(([k]) => k), keys);
  const reading = readTopologySecret(stored(data), 'test');
  assert.equal(reading.kind, 'document', reading.kind === 'error' ? reading.error.message : '');
  if (reading.kind !== 'document') return;
  assert.deepEqual(reading.document.backends.map((r) => r.name), keys.map((_, i) => `rule-${i}`));
  assert.equal(reading.document.backends[0]!.endpoint, longEndpoint);
});

test("the compiler's Secret data reads back as the document it compiled, its TLS material as files", () => {
  const compiled = compileTopology([{ name: 'pods', prefix: { prefix: 'pods' }, endpoint: 'postgres://u@db:5432/pods', tlsMaterial: { ca: 'CA PEM' } }], { mountPath: '/etc/topology' });
  const { documents, files } = splitSecretData(Object.entries(compiled.secretData));
  assert.deepEqual(documents.map(([k]) => k), [TOPOLOGY_DOCUMENT_KEY]);
  assert.deepEqual(files, [['pods.ca.crt', 'CA PEM']]);
  const reading = readTopologySecret(stored(compiled.secretData), 'test', { tlsDir: '/etc/topology' });
  assert.equal(reading.kind, 'document', reading.kind === 'error' ? reading.error.message : '');
  if (reading.kind !== 'document') return;
  assert.deepEqual(reading.document, parseYaml(compiled.documentYaml));
});

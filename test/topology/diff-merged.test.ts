/**
 * `harikube topology diff` on the operator's topology Secret (one document per TopologyConfig): the merged
 * topology, compared rule by rule, backends by host and database, never a password.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { diffTopologies, formatChange, loadTopologyView } from '../../middleware/src/topology/diff.js';

const PASSWORD = 's3cret-pw';
const secret = (docs: Record<string, unknown>) =>
  stringify({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'topology-config', namespace: 'harikube' },
    data: Object.fromEntries(Object.entries(docs).map(([k, v]) => [k, Buffer.from(stringify(v)).toString('base64')])),
  });

test('diff of two operator Secrets shows platform and app rules of the merged topology by name, host and database', () => {
  const before = secret({
    '0001-harikube.harikube-root-platform.yaml': { backends: [{ name: 'configmaps', endpoint: `postgres://harikube:${PASSWORD}@pg-rw.harikube.svc:5432/configmaps`, prefix: { prefix: 'configmaps' } }] },
    '0002-shop.shop.yaml': { backends: [{ name: 'shop', endpoint: `postgres://harikube:${PASSWORD}@shop-db-rw.shop.svc:5432/shop`, namespace: { namespace: 'shop' } }] },
  });
  const after = secret({
    '0001-harikube.harikube-root-platform.yaml': { backends: [{ name: 'configmaps', endpoint: `postgres://harikube:${PASSWORD}@pg-rw.harikube.svc:5432/configmaps`, prefix: { prefix: 'configmaps' } }] },
    '0002-shop.shop.yaml': { backends: [{ name: 'shop', endpoint: `mysql://shop:${PASSWORD}@tcp(maria.shop.svc:3306)/shop`, namespace: { namespace: 'shop' } }] },
    '0003-blog.blog.yaml': { backends: [{ name: 'blog', endpoint: `postgres://blog:${PASSWORD}@blog-db.blog.svc:5432/blog`, namespace: { namespace: 'blog' } }] },
  });
  const changes = diffTopologies(loadTopologyView(before, 'before'), loadTopologyView(after, 'after')).map(formatChange);
  assert.deepEqual(changes, [
    '~ rule "shop" (#2) backend: postgres://harikube:***@shop-db-rw.shop.svc:5432/shop (postgres) -> mysql://shop:***@tcp(maria.shop.svc:3306)/shop (mysql)',
    '+ rule "blog" added at #3: namespace blog -> postgres://blog:***@blog-db.blog.svc:5432/blog (postgres)',
  ]);
  assert.ok(!changes.join('\n').includes(PASSWORD));
});

/**
 * Planning and configuration of the platform (pure): layer tree, database collection, what is rejected; the
 * stack config schema against the project file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { planPlatform, declaredRouting, type PlatformLayer } from '../../components/platform.js';
import { parsePlatformConfig, platformArgs, PlatformConfigSchema, PlatformConfigError } from '../../stacks/platform/config.js';
import { REPO } from './stack-runner.js';

const dbs = { postgres: { main: {} }, mariadb: { main: {} }, etcd: { pods: {} } };
const layer = (rules: PlatformLayer['rules'], extra: Partial<PlatformLayer> = {}): PlatformLayer => ({ rules, ...extra });

test('plan: root found, children ordered first, databases collected per instance', () => {
  const plan = planPlatform({
    ...dbs,
    layers: {
      root: layer([{ name: 'ks', backend: { layer: 'ks' }, namespace: { namespace: 'kube-system' } }], { defaultBackend: { postgres: 'main' } }),
      ks: layer([
        { name: 'cm', backend: { postgres: 'main', database: 'configmaps' }, prefix: { prefix: 'configmaps' } },
        { name: 'sec', backend: { mariadb: 'main', database: 'secrets' }, prefix: { prefix: 'secrets' } },
        { name: 'pods', backend: { etcd: 'pods' }, prefix: { prefix: 'pods' } },
      ]),
    },
  });
  assert.equal(plan.root, 'root');
  assert.deepEqual(plan.order, ['ks', 'root']);
  assert.deepEqual(plan.parentOf, { ks: 'root' });
  assert.deepEqual(plan.postgresDatabases.main!.sort(), ['configmaps', 'harikube']);
  assert.deepEqual(plan.mariadbDatabases, { main: ['secrets'] });
});

test('plan rejects what would break at runtime', () => {
  const reject = (layers: Record<string, PlatformLayer>, pattern: RegExp) => assert.throws(() => planPlatform({ ...dbs, layers }), pattern);
  const r = (name: string, backend: any) => ({ name, backend, prefix: { prefix: name } });
  reject({ a: layer([r('x', { layer: 'b' })]), b: layer([r('y', { layer: 'a' })]) }, /cycle/);
  reject({ a: layer([]), b: layer([]) }, /exactly one root/);
  reject({ a: layer([r('x', { postgres: 'nope' })]) }, /postgres "nope", which is not declared/);
  reject({ a: layer([r('x', { postgres: 'main', database: 'd' }), r('y', { postgres: 'main', database: 'd' })]) }, /use the same backend postgres\/main\/d/);
  reject({ a: layer([r('x', { postgres: 'main' })], { defaultBackend: { postgres: 'main' } }) }, /same backend postgres\/main\/harikube/);
  reject({ a: layer([r('x', { sqlite: 'x.db' })], { replicas: 2, leaderElection: true }) }, /uses SQLite, but layer "a" has several replicas/);
  reject({ a: layer([r('x', { layer: 'b' }), r('y', { layer: 'c' })]), b: layer([r('z', { layer: 'c' })]), c: layer([]) }, /referenced by both/);
  reject({ a: layer([r('x', { layer: 'b' })]), b: layer([], { topologySource: 'operator' }) }, /only the root layer/);
  reject({ a: layer([r('x', { etcd: 'pods' }), r('y', { etcd: 'pods' })]) }, /same backend etcd\/pods/);
});

test('plan: leader election (and so rollouts by hand-over) is on by default only where two pods can run at once', () => {
  const r = (name: string, backend: any) => ({ name, backend, prefix: { prefix: name } });
  const plan = planPlatform({
    ...dbs,
    layers: {
      root: layer([r('a', { layer: 'pg' }), r('b', { layer: 'maria' }), r('c', { layer: 'lite' }), r('d', { layer: 'rule-lite' }), r('e', { layer: 'volume' }), r('f', { layer: 'off' })], { defaultBackend: { postgres: 'main' } }),
      pg: layer([r('x', { etcd: 'pods' })], { defaultBackend: { postgres: 'main', database: 'pg' } }),
      maria: layer([], { defaultBackend: { mariadb: 'main', database: 'm' } }),
      lite: layer([]),
      'rule-lite': layer([r('y', { sqlite: 'y.db' })], { defaultBackend: { postgres: 'main', database: 'rl' } }),
      volume: layer([], { defaultBackend: { postgres: 'main', database: 'v' }, storage: { size: '1Gi' } }),
      off: layer([], { defaultBackend: { postgres: 'main', database: 'o' }, leaderElection: false }),
    },
  });
  assert.deepEqual(plan.leaderElection, { root: true, pg: true, maria: true, lite: false, 'rule-lite': false, volume: false, off: false });
  assert.throws(
    () => planPlatform({ ...dbs, layers: { a: layer([r('x', { sqlite: 'x.db' })], { defaultBackend: { postgres: 'main' }, leaderElection: true }) } }),
    /layer "a" has leaderElection but keeps SQLite files on its data volume.*ReadWriteOnce/,
  );
});

test('declared routing of an operator-managed layer names rules and targets without endpoints', () => {
  const t = declaredRouting(layer([{ name: 'ks', backend: { layer: 'ks' }, namespace: { namespace: 'kube-system' } }], { defaultBackend: { postgres: 'main' } }), 'root');
  assert.deepEqual(t, {
    rules: [{ name: 'ks', position: 1, match: { namespace: { namespace: 'kube-system' } }, backend: { type: 'etcd', target: 'layer/ks' } }],
    default: { type: 'postgres', target: 'postgres/main/harikube' },
  });
});

test('config: errors name the key path; exactly one image source; secrets only by reference', () => {
  const base = { image: 'harikube:dev', layers: { root: { rules: [] } } };
  assert.doesNotThrow(() => parsePlatformConfig(base));
  assert.throws(() => parsePlatformConfig({ ...base, layers: { root: { rules: [{ name: 'x', backend: { postgres: 'main' }, prefix: { prefix: 'p' }, bogus: 1 }] } } }), (e: unknown) => e instanceof PlatformConfigError && /harikube:layers\.root\.rules\.0\.bogus/.test(e.message));
  assert.throws(() => parsePlatformConfig({ layers: base.layers }), /exactly one of harikube:image/);
  assert.throws(() => parsePlatformConfig({ ...base, imageRepository: 'r' }), /exactly one of harikube:image/);
  // a plaintext endpoint is not accepted in config; a secret config key is
  assert.throws(() => parsePlatformConfig({ ...base, layers: { root: { rules: [{ name: 'x', backend: { endpoint: 'postgres://u:p@h/db' }, prefix: { prefix: 'p' } }] } } }), PlatformConfigError);
  const cfg = parsePlatformConfig({ ...base, layers: { root: { rules: [{ name: 'x', backend: { secretConfig: 'externalDb' }, prefix: { prefix: 'p' } }] } } });
  const requested: string[] = [];
  const args = platformArgs(cfg, { requireSecret: ((k: string) => (requested.push(k), 'SECRET')) as any });
  assert.deepEqual(requested, ['externalDb']);
  assert.deepEqual(args.layers.root!.rules[0]!.backend, { endpoint: 'SECRET', target: 'external/externalDb' });
  // "" (the project file's default for optional strings) means unset
  assert.equal(parsePlatformConfig({ ...base, imageRepository: '', tlsIssuer: '' }).imageRepository, undefined);
});

test('the project file declares the scalar keys with the schema types and defaults', () => {
  const project = parseYaml(readFileSync(path.join(REPO, 'Pulumi.yaml'), 'utf8'));
  const props = PlatformConfigSchema.properties as Record<string, { type?: string; default?: unknown }>;
  for (const [key, decl] of Object.entries(project.config as Record<string, { type: string; default?: unknown }>)) {
    assert.ok(props[key], `Pulumi.yaml declares ${key}, which the program does not read`);
    assert.equal(decl.type, props[key]!.type, `type of ${key}`);
    if (props[key]!.default !== undefined) assert.deepEqual(decl.default, props[key]!.default, `default of ${key}`);
    else assert.equal(decl.default, '', `${key} is optional: its project default must be "" (a declared key without default is required)`);
  }
  for (const stack of ['dev', 'prod']) {
    const file = parseYaml(readFileSync(path.join(REPO, `stacks/platform/Pulumi.${stack}.yaml`), 'utf8'));
    // other namespaces (kubernetes:...) configure providers, not the program
    const raw = Object.fromEntries(Object.entries(file.config).filter(([k]) => k.startsWith('harikube:')).map(([k, v]) => [k.replace(/^harikube:/, ''), v]));
    assert.doesNotThrow(() => parsePlatformConfig(raw), `Pulumi.${stack}.yaml is valid`);
  }
});

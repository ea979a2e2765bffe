/**
 * The pure topology compiler, differ and `harikube topology` command: what the Topology component and the
 * CLI are built on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { compileTopology, topologyHash, endpointFingerprint, type DeclaredRule } from '../../middleware/src/topology/compile.js';
import { diffTopologies, formatChange, loadTopologyView } from '../../middleware/src/topology/diff.js';
import { main } from '../../middleware/src/topology/command.js';
import { validateTopology, TopologyValidationError } from '../../middleware/src/topology/validate.js';

const PASSWORD = 'S3cretPassw0rd';
const rules: DeclaredRule[] = [
  { name: 'kube-system', endpoint: 'https://harikube-kube-system.harikube.svc:2379', namespace: { namespace: 'kube-system' }, target: 'layer/kube-system', tlsMaterial: { ca: 'CA-PEM', cert: 'CERT-PEM', key: 'KEY-PEM' } },
  { name: 'configmaps', endpoint: `postgres://harikube:${PASSWORD}@pg-rw.harikube.svc:5432/configmaps`, prefix: { prefix: 'configmaps' }, target: 'postgres/main/configmaps', connectionPool: { maxOpen: 20, maxIdle: 5 } },
  { name: 'team-a', endpoint: `mysql://harikube:${PASSWORD}@tcp(maria.harikube.svc:3306)/team_a`, namespace: { namespace: 'team-a', kinds: ['pods', 'configmaps'] }, target: 'mariadb/main/team_a' },
];

function compile(r: DeclaredRule[] = rules, defaultEndpoint = 'sqlite:///var/lib/harikube/default.db') {
  return compileTopology(r, { mountPath: '/etc/harikube/topology/', fingerprintKey: 'k'.repeat(32), defaultEndpoint, defaultTarget: 'sqlite/root/default.db' });
}

test('compiled document is accepted by the middleware validator, canonical, and holds the endpoints', () => {
  const c = compile();
  const doc = parseYaml(c.documentYaml);
  assert.equal(validateTopology(doc).ok, true);
  assert.deepEqual(Object.keys(doc.backends[1]), ['name', 'endpoint', 'connectionPool', 'prefix'], 'fields in schema order');
  assert.equal(doc.backends[1].endpoint, rules[1]!.endpoint);
  // TLS material becomes files beside the document, referenced by path
  assert.deepEqual(doc.backends[0].backendTLS, {
    caFile: '/etc/harikube/topology/kube-system.ca.crt',
    certFile: '/etc/harikube/topology/kube-system.tls.crt',
    keyFile: '/etc/harikube/topology/kube-system.tls.key',
  });
  assert.equal(c.secretData['kube-system.tls.key'], 'KEY-PEM');
  assert.equal(c.secretData['topology.yaml'], c.documentYaml);
  // same declaration, same bytes: reordered object keys do not change the output
  const shuffled = rules.map((r) => Object.fromEntries(Object.entries(r).reverse()) as unknown as DeclaredRule);
  assert.equal(compile(shuffled).documentYaml, c.documentYaml);
});

test('routing table names rules, matches and backends (kind, host, database) but holds no endpoint or credential', () => {
  const c = compile();
  for (const secret of [PASSWORD, 'KEY-PEM', 'CERT-PEM', 'default.db?', '://', '@']) {
    assert.ok(!c.routingYaml.includes(secret), `routing table leaks ${secret}`);
  }
  assert.equal(c.routing.rules.find((r) => r.name === 'configmaps')!.backend.location, 'pg-rw.harikube.svc:5432/configmaps', 'reviewers see host and database');
  assert.deepEqual(c.routing.rules.map((r) => [r.position, r.name, r.backend.type, r.backend.target]), [
    [1, 'kube-system', 'etcd', 'layer/kube-system'],
    [2, 'configmaps', 'postgres', 'postgres/main/configmaps'],
    [3, 'team-a', 'mysql', 'mariadb/main/team_a'],
  ]);
  assert.deepEqual(c.routing.rules[2]!.match, { namespace: { namespace: 'team-a', kinds: ['pods', 'configmaps'] } });
  assert.equal(c.routing.rules[0]!.backend.tls, true);
  assert.deepEqual(c.routing.default, { type: 'sqlite', target: 'sqlite/root/default.db', location: '/var/lib/harikube/default.db', fingerprint: endpointFingerprint('k'.repeat(32), 'sqlite:///var/lib/harikube/default.db') });
});

test('fingerprints follow the endpoint but not its password; hashes are keyed', () => {
  const key = 'k'.repeat(32);
  const a = endpointFingerprint(key, `postgres://u:${PASSWORD}@h:5432/db`);
  assert.equal(endpointFingerprint(key, 'postgres://u:other@h:5432/db'), a, 'rotating the password must not look like a routing change');
  assert.notEqual(endpointFingerprint(key, `postgres://u:${PASSWORD}@h2:5432/db`), a);
  assert.notEqual(endpointFingerprint('other-key'.repeat(4), `postgres://u:${PASSWORD}@h:5432/db`), a);
  const data = compile().secretData;
  assert.notEqual(topologyHash(key, data), topologyHash('another key', data), 'the hash depends on the key');
  assert.notEqual(topologyHash(key, data), topologyHash(key, { ...data, 'topology.yaml': data['topology.yaml']!.replace(PASSWORD, 'x') }), 'a password change changes the hash');
  assert.match(topologyHash(key, data), /^[0-9a-f]{64}$/);
});

test('invalid declarations fail with the middleware validator naming the rule and field', () => {
  assert.throws(() => compile([{ ...rules[1]!, prefix: undefined, namespace: { namespace: 'x' }, regexp: { key: '(' } }]), (e: unknown) => {
    assert.ok(e instanceof TopologyValidationError);
    assert.match(e.message, /backends\[0\] \(name "configmaps"\)/);
    assert.match(e.message, /match blocks/);
    return true;
  });
  assert.throws(() => compile([rules[1]!, { ...rules[2]!, endpoint: rules[1]!.endpoint }]), /duplicates the endpoint/);
  assert.throws(() => compile([{ ...rules[0]!, tlsMaterial: { cert: 'C' } }]), /needs both cert and key/);
  assert.throws(() => compile([{ ...rules[0]!, name: 'a/b' }]), /TLS material needs a name/);
});

test('diff reports a rule moved to another backend, by name, with redacted endpoints', () => {
  const before = compile();
  const moved = rules.map((r) => (r.name === 'team-a' ? { ...r, endpoint: `postgres://harikube:${PASSWORD}@pg-rw.harikube.svc:5432/team_a`, target: 'postgres/main/team_a' } : r));
  const after = compile(moved);
  const fromRouting = diffTopologies(loadTopologyView(before.routingYaml, 'old'), loadTopologyView(after.routingYaml, 'new'));
  assert.deepEqual(fromRouting.map((c) => [c.kind, 'name' in c ? c.name : '']), [['backend', 'team-a']]);
  assert.equal(formatChange(fromRouting[0]!), '~ rule "team-a" (#3) backend: mariadb/main/team_a (mysql, maria.harikube.svc:3306/team_a) -> postgres/main/team_a (postgres, pg-rw.harikube.svc:5432/team_a)');
  const fromDocs = diffTopologies(loadTopologyView(before.documentYaml, 'old'), loadTopologyView(after.documentYaml, 'new'));
  const text = fromDocs.map(formatChange).join('\n');
  assert.match(text, /rule "team-a" \(#3\) backend: mysql:\/\/harikube:\*\*\*@tcp\(maria\.harikube\.svc:3306\)\/team_a \(mysql\) -> postgres:\/\/harikube:\*\*\*@/);
  assert.ok(!text.includes(PASSWORD));
});

test('diff: added, removed, moved, match and settings changes; password-only change is reported without values', () => {
  const old = { backends: [
    { name: 'a', endpoint: 'sqlite://./a.db', prefix: { prefix: 'pods' } },
    { name: 'b', endpoint: 'sqlite://./b.db', prefix: { prefix: 'secrets' } },
    { name: 'c', endpoint: `postgres://u:${PASSWORD}@h:5432/c`, namespace: { namespace: 'c' } },
    { name: 'gone', endpoint: 'sqlite://./g.db', prefix: { prefix: 'leases' } },
  ] };
  const next = { backends: [
    { name: 'new', endpoint: 'sqlite://./n.db', customresource: { group: 'stable.example.com' } },
    { name: 'c', endpoint: 'postgres://u:rotated@h:5432/c', namespace: { namespace: 'c' } },
    { name: 'a', endpoint: 'sqlite://./a.db', prefix: { prefix: 'pods' }, compactInterval: '10m' },
    { name: 'b', endpoint: 'sqlite://./b.db', prefix: { prefix: 'configmaps' } },
  ] };
  const changes = diffTopologies(loadTopologyView(JSON.stringify(old), 'old'), loadTopologyView(JSON.stringify(next), 'new'));
  const lines = changes.map(formatChange);
  assert.deepEqual(lines.sort(), [
    '+ rule "new" added at #1: custom resource stable.example.com (whole group) -> sqlite://./n.db (sqlite)',
    '- rule "gone" removed (was #4: prefix /registry/leases -> sqlite://./g.db (sqlite))',
    '> rule "c" moved from #3 to #2 (its order relative to other rules changed)',
    '~ rule "a" (#3) compactInterval: (unset) -> "10m"',
    '~ rule "b" (#4) match: prefix /registry/secrets -> prefix /registry/configmaps',
    '~ rule "c" (#2) endpoint credentials changed (values not shown)',
  ].sort());
  assert.ok(!lines.join('\n').includes('rotated') && !lines.join('\n').includes(PASSWORD));
  // only a shift in index because a rule was added above is not a move
  const shifted = diffTopologies(loadTopologyView(JSON.stringify({ backends: old.backends.slice(0, 2) }), 'o'), loadTopologyView(JSON.stringify({ backends: [next.backends[0], ...old.backends.slice(0, 2)] }), 'n'));
  assert.deepEqual(shifted.map((c) => c.kind), ['added']);
});

function captureIo(files: Record<string, string>) {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: {
      out: (t: string) => void out.push(t),
      err: (t: string) => void err.push(t),
      readText: async (p: string) => {
        if (!(p in files)) throw new Error(`ENOENT: ${p}`);
        return files[p]!;
      },
    },
  };
}

test('harikube topology diff on two routing ConfigMaps: exit 1 with the change, 0 when equal, 2 on bad input', async () => {
  const configMap = (routing: string) => JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'harikube-root-routing' }, data: { 'routing.yaml': routing } });
  const before = compile();
  const after = compile(rules.map((r) => (r.name === 'configmaps' ? { ...r, prefix: { prefix: 'secrets' } } : r)));
  const files = { 'old.yaml': configMap(before.routingYaml), 'new.yaml': configMap(after.routingYaml), 'bad.yaml': 'kind: Deployment' };
  let cap = captureIo(files);
  assert.equal(await main(['diff', 'old.yaml', 'new.yaml'], cap.io), 1);
  assert.equal(cap.out.join(''), '~ rule "configmaps" (#2) match: prefix /registry/configmaps -> prefix /registry/secrets\n1 change\n');
  cap = captureIo(files);
  assert.equal(await main(['diff', 'old.yaml', 'old.yaml'], cap.io), 0);
  assert.equal(cap.out.join(''), 'no routing changes\n');
  cap = captureIo(files);
  assert.equal(await main(['diff', 'old.yaml', 'bad.yaml'], cap.io), 2);
  assert.match(cap.err.join(''), /bad\.yaml: is neither a topology document/);
  cap = captureIo(files);
  assert.equal(await main(['diff', 'old.yaml'], cap.io), 2);
  cap = captureIo(files);
  assert.equal(await main(['diff', '--json', 'old.yaml', 'new.yaml'], cap.io), 1);
  assert.equal(JSON.parse(cap.out.join('')).changes[0].name, 'configmaps');
});

test('harikube topology validate: 0 for a valid document, 2 with the validator errors otherwise', async () => {
  const files = {
    'good.yaml': compile().documentYaml,
    'bad.yaml': 'backends:\n- name: x\n  endpoint: nope\n  prefix: { prefix: pods }\n  namespace: { namespace: a }\n',
    'secret.yaml': JSON.stringify({ kind: 'Secret', data: { 'topology.yaml': Buffer.from(compile().documentYaml).toString('base64') } }),
  };
  let cap = captureIo(files);
  assert.equal(await main(['validate', 'good.yaml'], cap.io), 0);
  assert.equal(cap.out.join(''), 'good.yaml: valid (3 rules)\n');
  cap = captureIo(files);
  assert.equal(await main(['validate', 'secret.yaml'], cap.io), 0);
  cap = captureIo(files);
  assert.equal(await main(['validate', 'bad.yaml'], cap.io), 2);
  const err = cap.err.join('');
  assert.match(err, /backends\[0\] \(name "x"\): field "namespace,prefix": has 2 match blocks/);
  assert.match(err, /field "endpoint": endpoint "nope": has no scheme/);
  cap = captureIo(files);
  assert.equal(await main(['validate', 'missing.yaml'], cap.io), 2);
  cap = captureIo(files);
  assert.equal(await main(['nonsense'], cap.io), 2);
});

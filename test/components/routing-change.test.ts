/**
 * A routing change as a reviewer sees it: the same Topology deployed twice (same name, so the same hash key
 * from state), once with namespace `team-a` on MariaDB and once on PostgreSQL. The routing ConfigMap's data
 * changes only in that rule's entry, holds nothing secret, and `harikube topology diff` on the two
 * ConfigMaps reports the move.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { stringify as stringifyYaml, parse as parseYaml } from 'yaml';
import * as pulumi from '@pulumi/pulumi';
import { containsSecret, setupMocks, strings, valueOf, type Harness, type Recorded } from './harness.js';
import { main } from '../../middleware/src/topology/command.js';

let h: Harness;
const PASSWORD = 'routingPassw0rd';
const endpoints = {
  pgConfigmaps: `postgres://harikube:${PASSWORD}@pg-rw.harikube.svc:5432/configmaps`,
  pgTeamA: `postgres://harikube:${PASSWORD}@pg-rw.harikube.svc:5432/team_a`,
  mariaTeamA: `mysql://harikube:${PASSWORD}@tcp(maria.harikube.svc:3306)/team_a`,
};
let configMaps: Recorded[];
let topologies: import('../../components/index.js').Topology[];

before(async () => {
  h = await setupMocks();
  const m = await import('../../components/index.js');
  const declare = (teamA: { endpoint: string; target: string }) =>
    new m.Topology('root', {
      namespace: 'harikube',
      objectName: 'harikube-root',
      rules: [
        { name: 'configmaps', endpoint: pulumi.secret(endpoints.pgConfigmaps), prefix: { prefix: 'configmaps' }, target: 'postgres/main/configmaps' },
        { name: 'team-a', endpoint: pulumi.secret(teamA.endpoint), namespace: { namespace: 'team-a' }, target: teamA.target },
        { name: 'pods', endpoint: 'http://harikube-etcd-pods.harikube.svc:2379', prefix: { prefix: 'pods' }, target: 'etcd/pods' },
      ],
    });
  topologies = [declare({ endpoint: endpoints.mariaTeamA, target: 'mariadb/main/team_a' }), declare({ endpoint: endpoints.pgTeamA, target: 'postgres/main/team_a' })];
  await h.settle();
  configMaps = h.ofType('kubernetes:core/v1:ConfigMap');
  assert.equal(configMaps.length, 2);
});

test('the routing ConfigMap changes only in the moved rule, and holds nothing secret', async () => {
  const [before, after] = configMaps.map((c) => c.plain.data['routing.yaml'] as string) as [string, string];
  assert.notEqual(before, after);
  for (const c of configMaps) {
    assert.equal(containsSecret(c.inputs), false);
    for (const secret of [PASSWORD, ...Object.values(endpoints), ...h.credentials]) {
      assert.ok(!strings(c.plain).some((s) => s.includes(secret)), 'routing ConfigMap holds secret text');
    }
  }
  for (const t of topologies) assert.equal(await pulumi.isSecret(t.configMap.data), false);
  // the changed lines all belong to the rule named team-a
  const a = before.split('\n');
  const b = after.split('\n');
  const changed = a.map((line, i) => (line !== b[i] ? i : -1)).filter((i) => i >= 0);
  assert.ok(changed.length > 0);
  for (const i of changed) {
    const owner = a.slice(0, i + 1).reverse().find((l) => /^\s*- name: /.test(l));
    assert.equal(owner?.trim(), '- name: team-a', `line ${i} "${a[i]}" belongs to another rule`);
  }
  const rule = parseYaml(after).rules.find((r: { name: string }) => r.name === 'team-a');
  assert.deepEqual(rule.backend.type, 'postgres');
  // the Secrets differ too, but not what the middleware reads only at start: no rollout
  assert.notEqual(await valueOf(topologies[0]!.hash), await valueOf(topologies[1]!.hash));
  assert.equal(await valueOf(topologies[0]!.restartHash), await valueOf(topologies[1]!.restartHash));
});

test('harikube topology diff on the two ConfigMaps reports the rule by name', async () => {
  const asFile = (c: Recorded) => stringifyYaml({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: c.plain.metadata.name, namespace: 'harikube' }, data: c.plain.data });
  const files: Record<string, string> = { 'before.yaml': asFile(configMaps[0]!), 'after.yaml': asFile(configMaps[1]!) };
  const out: string[] = [];
  const code = await main(['diff', 'before.yaml', 'after.yaml'], { out: (t) => void out.push(t), err: (t) => void out.push(t), readText: async (p) => files[p]! });
  assert.equal(code, 1);
  assert.equal(out.join(''), '~ rule "team-a" (#2) backend: mariadb/main/team_a (mysql, maria.harikube.svc:3306/team_a) -> postgres/main/team_a (postgres, pg-rw.harikube.svc:5432/team_a)\n1 change\n');
});

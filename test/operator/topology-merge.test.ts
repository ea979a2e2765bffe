/** Merging TopologyConfigs into one topology: order, conflicts, keeping last good rules (pure). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { planMerge, type MergeMember } from '../../middleware/src/operator/topology-merge.js';
import type { AppliedSource } from '../../middleware/src/operator/topology-secret.js';
import type { BackendRule } from '../../middleware/src/topology/schema.js';

const r = (name: string, endpoint = `sqlite://./db/${name}.db`): BackendRule => ({ name, endpoint, prefix: { prefix: name } });

let clock = 0;
function member(namespace: string, name: string, position: number, rules: BackendRule[] | string, created?: number): MergeMember {
  const t = created ?? ++clock;
  return {
    namespace,
    name,
    uid: `uid-${namespace}-${name}`,
    generation: 2,
    creationTimestamp: new Date(Date.UTC(2025, 0, 1, 0, 0, t)).toISOString(),
    position,
    ...(typeof rules === 'string' ? { failure: rules } : { rules }),
  };
}

function applied(m: MergeMember, rules: BackendRule[], position = m.position, generation = 1): [string, AppliedSource] {
  return [`${m.namespace}/${m.name}`, { key: 'x', namespace: m.namespace, name: m.name, uid: m.uid, generation, position, rules }];
}

const names = (plan: ReturnType<typeof planMerge>) => plan.merged.backends.map((b) => b.name);

test('rules are ordered by position, then namespace, then name; keys carry the order', () => {
  const plan = planMerge(
    [member('b', 'x', 10, [r('b-x')]), member('a', 'z', 10, [r('a-z')]), member('a', 'y', 10, [r('a-y')]), member('c', 'w', 1, [r('c-w'), r('c-w2')])],
    new Map(),
  );
  assert.deepEqual(names(plan), ['c-w', 'c-w2', 'a-y', 'a-z', 'b-x']);
  assert.deepEqual(
    plan.documents.map((d) => d.key),
    ['0001-c.w.yaml', '0002-a.y.yaml', '0003-a.z.yaml', '0004-b.x.yaml'],
  );
  const doc = parseYaml(plan.documents[0]!.text) as { backends: BackendRule[] };
  assert.deepEqual(doc.backends, [r('c-w'), r('c-w2')]);
  assert.match(plan.documents[0]!.text, /^# From TopologyConfig c\/w \(generation 2, position 1\)/);
  assert.deepEqual(
    plan.sources.map((s) => [s.key, s.uid, s.position]),
    [
      ['0001-c.w.yaml', 'uid-c-w', 1],
      ['0002-a.y.yaml', 'uid-a-y', 10],
      ['0003-a.z.yaml', 'uid-a-z', 10],
      ['0004-b.x.yaml', 'uid-b-x', 10],
    ],
  );
});

test('the order prefix widens past 9999 resources so keys still sort in rule order', () => {
  const members = Array.from({ length: 10_001 }, (_, i) => member('ns', `r${i}`, i + 1, [r(`n${i}`)], 1));
  const plan = planMerge(members, new Map());
  const keys = plan.documents.map((d) => d.key);
  assert.equal(keys[0], '00001-ns.r0.yaml');
  assert.deepEqual([...keys].sort(), keys);
});

test('names too long for a Secret data key are cut and made unique with a hash', () => {
  const long = 'x'.repeat(253);
  const plan = planMerge([member('ns', long, 1, [r('a')]), member('ns', `${long.slice(0, 252)}y`, 2, [r('b')])], new Map());
  const keys = plan.documents.map((d) => d.key);
  for (const k of keys) {
    assert.ok(k.length <= 253, `${k.length} characters`);
    assert.match(k, /^[-._a-zA-Z0-9]+$/);
  }
  assert.notEqual(keys[0]!.slice(5), keys[1]!.slice(5));
  assert.deepEqual([...keys].sort(), keys);
});

test('the plan does not depend on the order members are given in', () => {
  const ms = [member('a', 'one', 2, [r('one')], 1), member('b', 'two', 1, [r('two')], 2), member('c', 'dup', 3, [r('one', 'sqlite://./db/z.db')], 3)];
  const forward = planMerge(ms, new Map());
  const backward = planMerge([...ms].reverse(), new Map());
  assert.deepEqual(forward.documents, backward.documents);
  assert.deepEqual([...forward.outcomes.entries()].sort(), [...backward.outcomes.entries()].sort());
});

test('of two new resources claiming one name, the older wins even with a later position', () => {
  const older = member('team-a', 'older', 20, [r('pods')], 1);
  const newer = member('team-b', 'newer', 5, [r('secrets'), r('pods', 'sqlite://./db/other.db')], 2);
  const plan = planMerge([newer, older], new Map());
  assert.deepEqual(names(plan), ['pods']);
  const lost = plan.outcomes.get('team-b/newer')!;
  assert.equal(lost.state, 'none');
  assert.equal(
    lost.failure,
    'backends[1] (name "pods"): field "name": duplicates the name of backends[0] (name "pods") in TopologyConfig team-a/older',
  );
  assert.equal(plan.outcomes.get('team-a/older')!.state, 'current');
});

test('a duplicate endpoint fails the resource and the reason does not show the endpoint', () => {
  const secretEndpoint = 'postgres://app:hunter2@db:5432/pods';
  const plan = planMerge([member('a', 'one', 1, [r('one', secretEndpoint)], 1), member('b', 'two', 2, [r('two', secretEndpoint)], 2)], new Map());
  const lost = plan.outcomes.get('b/two')!;
  assert.equal(lost.state, 'none');
  assert.match(lost.failure!, /backends\[0\] \(name "two"\): field "endpoint": duplicates the endpoint of backends\[0\] \(name "one"\) in TopologyConfig a\/one/);
  assert.ok(!lost.failure!.includes('hunter2') && !lost.failure!.includes('db:5432'));
});

test('a name a resource already has applied stays its own, even against an older resource', () => {
  const incumbent = member('team-b', 'incumbent', 5, [r('pods'), r('extra')], 2);
  const older = member('team-a', 'older', 1, [r('pods', 'sqlite://./db/mine.db')], 1);
  const plan = planMerge([older, incumbent], new Map([applied(incumbent, [r('pods')])]));
  assert.equal(plan.outcomes.get('team-b/incumbent')!.state, 'current');
  assert.equal(plan.outcomes.get('team-a/older')!.state, 'none');
  assert.match(plan.outcomes.get('team-a/older')!.failure!, /field "name": duplicates the name of backends\[0\] \(name "pods"\) in TopologyConfig team-b\/incumbent/);
  assert.deepEqual(names(plan), ['pods', 'extra']);
});

test('a resource that fails keeps its last applied rules (at their old position) and they keep their names', () => {
  const broken = member('team-a', 'broken', 50, 'backends[0] (name "pods"): field "regexp.key": does not compile');
  const claimant = member('team-b', 'claimant', 1, [r('pods', 'sqlite://./db/new.db')], 0);
  const other = member('team-c', 'other', 20, [r('other')]);
  const plan = planMerge([broken, claimant, other], new Map([applied(broken, [r('pods')], 10, 1)]));
  const kept = plan.outcomes.get('team-a/broken')!;
  assert.equal(kept.state, 'previous');
  assert.equal(kept.appliedGeneration, 1);
  assert.match(kept.failure!, /regexp.key/);
  assert.deepEqual(names(plan), ['pods', 'other'], 'old rules at old position 10, before position 20');
  assert.equal(plan.outcomes.get('team-b/claimant')!.state, 'none', 'live rules win over new ones');
  assert.match(plan.outcomes.get('team-b/claimant')!.failure!, /in the last applied rules of TopologyConfig team-a\/broken/);
  assert.equal(plan.sources.find((s) => s.name === 'broken')!.generation, 1);
});

test('a failed resource whose last applied rules now conflict loses them, with both reasons', () => {
  // The Secret was edited so two resources' applied rules collide; the older resource keeps its name.
  const a = member('ns', 'a', 1, 'bad spec', 1);
  const b = member('ns', 'b', 2, 'also bad', 2);
  const plan = planMerge([a, b], new Map([applied(a, [r('same')]), applied(b, [r('same', 'sqlite://./db/b.db')])]));
  assert.equal(plan.outcomes.get('ns/a')!.state, 'previous');
  const lost = plan.outcomes.get('ns/b')!;
  assert.equal(lost.state, 'none');
  assert.match(lost.failure!, /^also bad; its last applied rules \(generation 1\) conflict too and were removed: .*field "name"/);
});

test('applied rules of a different object with the same name (deleted and recreated) are not kept', () => {
  const recreated = { ...member('ns', 'app', 1, 'invalid now'), uid: 'new-uid' };
  const plan = planMerge([recreated], new Map([applied({ ...recreated, uid: 'old-uid' }, [r('pods')])]));
  assert.equal(plan.outcomes.get('ns/app')!.state, 'none');
  assert.deepEqual(plan.documents, []);
});

test('applied rules the validator no longer accepts are dropped by the merged-document check', () => {
  const m = member('ns', 'old', 1, 'current spec invalid');
  const stale: BackendRule = { name: 'legacy', endpoint: 'sqlite://./db/l.db', regexp: { key: '(' } };
  const plan = planMerge([m], new Map([applied(m, [stale])]));
  const outcome = plan.outcomes.get('ns/old')!;
  assert.equal(outcome.state, 'none');
  assert.match(outcome.failure!, /backends\[0\] \(name "legacy"\): field "regexp.key": does not compile.*\(in the merged topology\)/);
  assert.deepEqual(plan.merged.backends, []);
});

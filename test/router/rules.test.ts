import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BackendRule } from '../../middleware/src/topology/schema.js';
import { compareBytes, compileRule, prefixRangeEnd, regexpLiteralPrefix, type RuleMatcher } from '../../middleware/src/router/rules.js';
import { Gen } from './gen.js';

const b = (s: string) => Buffer.from(s, 'utf8');
const EVERYTHING = Buffer.alloc(0);
const rule = (match: Partial<BackendRule>): BackendRule => ({ name: 'r', endpoint: 'sqlite://./r.db', ...match });
const matches = (m: RuleMatcher, key: string) => m.matchesKey(b(key));

test('prefix rules match literal bytes after /registry/', () => {
  const pods = compileRule(rule({ prefix: { prefix: 'pods' } }));
  assert.ok(matches(pods, '/registry/pods/default/a'));
  assert.ok(matches(pods, '/registry/pods'));
  // literal: a longer resource name with the same start matches too; users write "pods/" to avoid it
  assert.ok(matches(pods, '/registry/podsecuritypolicy/x'));
  assert.ok(!matches(pods, '/registry/configmaps/default/a'));
  assert.ok(!matches(pods, 'pods'));
  const podsOnly = compileRule(rule({ prefix: { prefix: 'pods/' } }));
  assert.ok(matches(podsOnly, '/registry/pods/default/a'));
  assert.ok(!matches(podsOnly, '/registry/podsecuritypolicy/x'));
  assert.ok(!matches(podsOnly, '/registry/pods'));
});

test('customresource rules match one plural, or the whole group when kind is empty or missing', () => {
  const shirts = compileRule(rule({ customresource: { group: 'stable.example.com', kind: 'shirts' } }));
  assert.ok(matches(shirts, '/registry/stable.example.com/shirts/default/s'));
  assert.ok(matches(shirts, '/registry/stable.example.com/shirts/cluster-one'));
  assert.ok(!matches(shirts, '/registry/stable.example.com/shirtsizes/default/s'));
  assert.ok(!matches(shirts, '/registry/stable.example.com/hats/default/h'));
  for (const cr of [{ group: 'stable.example.com' }, { group: 'stable.example.com', kind: '' }]) {
    const group = compileRule(rule({ customresource: cr }));
    assert.ok(matches(group, '/registry/stable.example.com/hats/default/h'));
    assert.ok(!matches(group, '/registry/stable.example.com.evil/hats/default/h'));
    assert.ok(!matches(group, '/registry/example.com/hats/default/h'));
  }
});

test('namespace rules without kinds route every curated namespaced built-in of the namespace, nothing else', () => {
  const ks = compileRule(rule({ namespace: { namespace: 'kube-system' } }));
  for (const key of [
    '/registry/pods/kube-system/coredns',
    '/registry/configmaps/kube-system/cm',
    '/registry/controllers/kube-system/rc',
    '/registry/ingress/kube-system/i',
    '/registry/leases/kube-system/l',
    '/registry/services/specs/kube-system/kube-dns',
    '/registry/services/endpoints/kube-system/kube-dns',
    '/registry/pods/kube-system/',
  ]) {
    assert.ok(matches(ks, key), key);
  }
  for (const key of [
    '/registry/namespaces/kube-system', // the namespace object itself is cluster-scoped
    '/registry/minions/kube-system',
    '/registry/clusterroles/kube-system',
    '/registry/stable.example.com/shirts/kube-system/x', // custom resources need their own rule
    '/registry/pods/default/coredns',
    '/registry/pods/kube-system-2/coredns',
    '/registry/pods/kube/x',
    '/registry/pods/kube-system', // no object below it
    '/registry/services/kube-system/x',
    '/registry/endpoints/kube-system/x', // endpoints are stored under services/endpoints
    '/registry/somethingnew/kube-system/x', // not in the curated list
    'kube-system',
  ]) {
    assert.ok(!matches(ks, key), key);
  }
});

test('namespace rules with kinds route only those; explicit unknown kinds count as namespaced, dotted ones never', () => {
  const m = compileRule(
    rule({ namespace: { namespace: 'team-a', kinds: ['pods', 'endpoints', 'replicationcontrollers', 'somethingnew', 'shirts.stable.example.com'] } }),
  );
  assert.ok(matches(m, '/registry/pods/team-a/p'));
  assert.ok(matches(m, '/registry/services/endpoints/team-a/e'));
  assert.ok(matches(m, '/registry/controllers/team-a/rc'));
  assert.ok(matches(m, '/registry/somethingnew/team-a/x'));
  assert.ok(!matches(m, '/registry/services/specs/team-a/s'));
  assert.ok(!matches(m, '/registry/configmaps/team-a/c'));
  assert.ok(!matches(m, '/registry/shirts.stable.example.com/team-a/x'));
  assert.ok(!matches(m, '/registry/stable.example.com/shirts/team-a/x'));
  // an empty kinds list is read as no filter, like a missing one
  const all = compileRule(rule({ namespace: { namespace: 'team-a', kinds: [] } }));
  assert.ok(matches(all, '/registry/secrets/team-a/s'));
});

test('regexp rules test `key` on single keys, falling back to `prefix`', () => {
  const both = compileRule(rule({ regexp: { key: '^/registry/secrets/', prefix: 'configmaps' } }));
  assert.ok(matches(both, '/registry/secrets/default/s'));
  assert.ok(!matches(both, '/registry/configmaps/default/c'));
  const prefixOnly = compileRule(rule({ regexp: { prefix: '(clusterrolebindings|clusterroles|rolebindings|roles)' } }));
  assert.ok(matches(prefixOnly, '/registry/roles/default/r'));
  assert.ok(matches(prefixOnly, '/registry/clusterroles/admin'));
  assert.ok(!matches(prefixOnly, '/registry/pods/default/p'));
  // unanchored
  const unanchored = compileRule(rule({ regexp: { key: 'kube-system' } }));
  assert.ok(matches(unanchored, '/registry/pods/kube-system/x'));
  assert.ok(matches(unanchored, '/registry/namespaces/kube-system'));
  // the compiled regexp keeps no state between keys
  for (let i = 0; i < 3; i++) assert.ok(matches(unanchored, '/registry/pods/kube-system/x'));
});

test('regexp literal prefixes are conservative', () => {
  assert.equal(regexpLiteralPrefix('^/registry/secrets/'), '/registry/secrets/');
  assert.equal(regexpLiteralPrefix('^\\/registry\\/pods\\/x'), '/registry/pods/x');
  assert.equal(regexpLiteralPrefix('^/registry/podsx?'), '/registry/pods');
  assert.equal(regexpLiteralPrefix('^/registry/pods*'), '/registry/pod');
  assert.equal(regexpLiteralPrefix('^/registry/a{0}'), '/registry/');
  assert.equal(regexpLiteralPrefix('^/registry/(roles|rolebindings)/'), ''); // alternation anywhere: give up
  assert.equal(regexpLiteralPrefix('^/registry/\\d'), '/registry/');
  assert.equal(regexpLiteralPrefix('^/registry/[ab]'), '/registry/');
  assert.equal(regexpLiteralPrefix('^/r.x'), '/r');
  assert.equal(regexpLiteralPrefix('^/ü'), '/');
  assert.equal(regexpLiteralPrefix('/registry/secrets/'), '');
  // the prefilter never changes the answer
  const anchored = compileRule(rule({ regexp: { key: '^/registry/podsx?/' } }));
  assert.ok(matches(anchored, '/registry/pods/a'));
  assert.ok(matches(anchored, '/registry/podsx/a'));
  assert.ok(!matches(anchored, '/registry/pod/a'));
});

test('binary keys that are not UTF-8 are matched by their bytes', () => {
  const bin = Buffer.concat([b('/registry/pods/kube-system/'), Buffer.from([0xff, 0xfe, 0x80])]);
  assert.ok(compileRule(rule({ prefix: { prefix: 'pods/' } })).matchesKey(bin));
  assert.ok(compileRule(rule({ namespace: { namespace: 'kube-system' } })).matchesKey(bin));
  assert.ok(compileRule(rule({ regexp: { key: '^/registry/pods/kube-system/\uFFFD' } })).matchesKey(bin));
  const nsBin = Buffer.concat([b('/registry/pods/'), Buffer.from([0xc3, 0xff]), b('/x')]);
  assert.ok(!compileRule(rule({ namespace: { namespace: '\u00c3\u00ff' } })).matchesKey(nsBin));
  assert.ok(!compileRule(rule({ namespace: { namespace: 'kube-system' } })).matchesKey(Buffer.from([0xff, 0x2f])));
  // a non-ASCII namespace is compared as UTF-8 bytes
  assert.ok(compileRule(rule({ namespace: { namespace: 'ünï' } })).matchesKey(b('/registry/pods/ünï/x')));
  assert.ok(compileRule(rule({ namespace: { namespace: 'x', kinds: ['pödś'] } })).matchesKey(b('/registry/pödś/x/y')));
});

test('mayHoldRange: exact for prefix-shaped rules, always for regexp ranges', () => {
  const pods = compileRule(rule({ prefix: { prefix: 'pods/' } }));
  assert.ok(pods.mayHoldRange(b('/registry/'), prefixRangeEnd(b('/registry/'))));
  assert.ok(pods.mayHoldRange(b('/registry/pods/default/'), prefixRangeEnd(b('/registry/pods/default/'))));
  assert.ok(pods.mayHoldRange(b('/registry/pods/zzz'), EVERYTHING));
  assert.ok(pods.mayHoldRange(Buffer.from([0]), EVERYTHING));
  assert.ok(!pods.mayHoldRange(b('/registry/secrets/'), prefixRangeEnd(b('/registry/secrets/'))));
  assert.ok(!pods.mayHoldRange(b('/registry/pods0'), EVERYTHING)); // '0' sorts right after '/'
  assert.ok(!pods.mayHoldRange(b('/registry/a'), b('/registry/pods/'))); // end is exclusive
  assert.ok(pods.mayHoldRange(b('/registry/a'), b('/registry/pods/\0')));
  assert.ok(!pods.mayHoldRange(b('/registry/pods/z'), b('/registry/pods/a'))); // empty range
  assert.ok(pods.mayHoldRange(b('/registry/pods/x'), undefined));
  assert.ok(!pods.mayHoldRange(b('/registry/pods'), undefined));

  const ks = compileRule(rule({ namespace: { namespace: 'kube-system', kinds: ['pods', 'services'] } }));
  assert.ok(ks.mayHoldRange(b('/registry/pods/'), prefixRangeEnd(b('/registry/pods/'))));
  assert.ok(ks.mayHoldRange(b('/registry/services/'), prefixRangeEnd(b('/registry/services/'))));
  assert.ok(!ks.mayHoldRange(b('/registry/pods/default/'), prefixRangeEnd(b('/registry/pods/default/'))));
  assert.ok(!ks.mayHoldRange(b('/registry/services/endpoints/'), prefixRangeEnd(b('/registry/services/endpoints/'))));
  assert.ok(!ks.mayHoldRange(b('/registry/configmaps/'), prefixRangeEnd(b('/registry/configmaps/'))));

  const re = compileRule(rule({ regexp: { key: '^/registry/secrets/' } }));
  assert.ok(re.mayHoldRange(b('/registry/pods/'), prefixRangeEnd(b('/registry/pods/'))));
  assert.ok(!re.mayHoldRange(b('/registry/pods/a'), undefined));
  assert.ok(re.mayHoldRange(b('/registry/secrets/a'), undefined));
});

test('property: a rule matches a key exactly when the key lies in its intervals, and mayHoldRange never misses', () => {
  const g = new Gen(20240601);
  for (let t = 0; t < 300; t++) {
    const rules = g.rules();
    const pool = Array.from({ length: 60 }, () => g.key());
    for (const r of rules) {
      const m = compileRule(r);
      for (const k of pool) {
        const hit = m.matchesKey(k);
        const source = r.regexp?.key ?? r.regexp?.prefix;
        if (source !== undefined) assert.equal(hit, new RegExp(source).test(k.toString('utf8')), `${source} ${k.toString('latin1')}`);
        if (m.intervals) {
          const inside = m.intervals.some(
            (iv) => Buffer.compare(k, iv.lo) >= 0 && (iv.hi === undefined || Buffer.compare(k, iv.hi) < 0),
          );
          assert.equal(inside, hit, `${JSON.stringify(r)} ${JSON.stringify(k.toString('latin1'))}`);
        }
      }
      for (let i = 0; i < 20; i++) {
        const { start, end } = g.range();
        for (const k of g.keysIn(start, end, pool)) {
          if (m.matchesKey(k)) {
            assert.ok(m.mayHoldRange(start, end), `${JSON.stringify(r)} misses ${k.toString('latin1')} in [${start.toString('latin1')}, ${end?.toString('latin1')})`);
          }
        }
      }
    }
  }
});

test('compareBytes orders like Buffer.compare', () => {
  const g = new Gen(3);
  for (let i = 0; i < 5000; i++) {
    const x = g.key();
    const y = g.chance(0.3) ? Buffer.concat([x, g.bytes(g.int(3))]) : g.key();
    assert.equal(Math.sign(compareBytes(x, y)), Buffer.compare(x, y));
    assert.equal(Math.sign(compareBytes(y, x)), Buffer.compare(y, x));
  }
});

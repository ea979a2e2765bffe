/**
 * A stand-in for the `random` resource provider, for the Pulumi engine tests only.
 *
 * The real provider (github.com/pulumi/pulumi-random/provider/v4, a bridged Terraform provider) is not served by
 * the Go module proxy we build tools from (it answers 403 for every version), so it cannot be built here. This
 * plugin serves the two resources the package declares, under their real type tokens, with the real
 * provider's inputs and outputs and its lifecycle: values are made once at create, every input change
 * (including `keepers`) replaces the resource, nothing is updated in place, delete forgets. `result`, `base64`
 * and `hex` are secrets because @pulumi/random marks them as additional secret outputs, as with the real
 * provider. Not served: `bcryptHash` (left empty) and every other random resource.
 *
 * The engine starts it as an ambient plugin (`pulumi-resource-random` on PATH, written by
 * test/pulumi/harness.ts) and talks to it over the provider gRPC protocol like any plugin.
 */
import { randomBytes, randomInt } from 'node:crypto';
import * as provider from '@pulumi/pulumi/provider/index.js';

const PASSWORD = 'random:index/randomPassword:RandomPassword';
const BYTES = 'random:index/randomBytes:RandomBytes';

/** The upstream default `overrideSpecial` set. */
const SPECIAL = '!@#$%&*()-_=+[]{}<>:?';
const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const NUMERIC = '0123456789';

type Props = Record<string, unknown>;

function typeOf(urn: string): string {
  const qualified = urn.split('::')[2] ?? '';
  return qualified.slice(qualified.lastIndexOf('$') + 1);
}

const PASSWORD_DEFAULTS: Props = { upper: true, lower: true, numeric: true, number: true, special: true, minUpper: 0, minLower: 0, minNumeric: 0, minSpecial: 0 };

function check(urn: string, news: Props): provider.CheckResult {
  const type = typeOf(urn);
  if (type !== PASSWORD && type !== BYTES) return { failures: [{ property: '', reason: `the random stand-in does not serve ${type}` }] };
  const length = news.length;
  if (typeof length !== 'number' || !Number.isInteger(length) || length < 1) return { failures: [{ property: 'length', reason: 'length must be an integer >= 1' }] };
  return { inputs: type === PASSWORD ? { ...PASSWORD_DEFAULTS, ...news } : { ...news } };
}

function password(p: Props): string {
  const length = p.length as number;
  const sets: Array<[string, number]> = [];
  if (p.upper) sets.push([UPPER, p.minUpper as number]);
  if (p.lower) sets.push([LOWER, p.minLower as number]);
  if (p.numeric && p.number !== false) sets.push([NUMERIC, p.minNumeric as number]);
  if (p.special) sets.push([typeof p.overrideSpecial === 'string' && p.overrideSpecial ? p.overrideSpecial : SPECIAL, p.minSpecial as number]);
  if (!sets.length) throw new Error('RandomPassword: every character class is disabled');
  const all = sets.map(([chars]) => chars).join('');
  const chars: string[] = [];
  for (const [set, min] of sets) for (let i = 0; i < min; i++) chars.push(set[randomInt(set.length)]!);
  while (chars.length < length) chars.push(all[randomInt(all.length)]!);
  for (let i = chars.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [chars[i], chars[j]] = [chars[j]!, chars[i]!];
  }
  return chars.slice(0, length).join('');
}

const standIn: provider.Provider = {
  version: '0.0.0-harikube.standin',
  async check(urn, _olds, news) {
    return check(urn, news as Props);
  },
  async diff(_id, _urn, olds, news) {
    const o = olds as Props;
    const n = news as Props;
    const keys = new Set([...Object.keys(n), ...Object.keys(o)].filter((k) => !['result', 'bcryptHash', 'base64', 'hex', 'id'].includes(k)));
    const replaces = [...keys].filter((k) => JSON.stringify(o[k] ?? null) !== JSON.stringify(n[k] ?? null));
    return { changes: replaces.length > 0, replaces, deleteBeforeReplace: false };
  },
  async create(urn, inputs) {
    const p = inputs as Props;
    if (typeOf(urn) === PASSWORD) return { id: 'none', outs: { ...p, result: password(p), bcryptHash: '' } };
    const bytes = randomBytes(p.length as number);
    return { id: 'none', outs: { ...p, base64: bytes.toString('base64'), hex: bytes.toString('hex') } };
  },
  async read(id, _urn, props) {
    return { id, props };
  },
  async delete() {},
};

provider.main(standIn, process.argv.slice(2)).catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

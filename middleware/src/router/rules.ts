/**
 * One topology rule compiled into a key matcher.
 *
 * prefix, customresource and namespace rules route a key set that is a finite union of byte prefixes; the
 * matcher exposes it as intervals so range routing can be exact (`mayHoldRange`, and the router's shadowing
 * analysis). A regexp rule's key set cannot be analysed: it may hold any range. Matching a single key is
 * done on bytes and allocates nothing, except the key's text once a regexp has to run.
 */
import type { BackendRule } from '../topology/schema.js';
import { NAMESPACED_RESOURCES, REGISTRY_PREFIX, REGISTRY_PREFIX_BYTES, storagePath } from './key-layout.js';

/** The keys [lo, hi) in bytewise order; `hi` undefined = to the end of the keyspace. */
export interface KeyInterval {
  readonly lo: Buffer;
  readonly hi: Buffer | undefined;
}

/** The first key after every key starting with `prefix` (etcd's prefix range end); undefined = none. */
export function prefixRangeEnd(prefix: Buffer): Buffer | undefined {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i]! < 0xff) {
      const end = Buffer.from(prefix.subarray(0, i + 1));
      end[i]! += 1;
      return end;
    }
  }
  return undefined;
}

/** Every key starting with `prefix`, as an interval. */
export function prefixInterval(prefix: Buffer): KeyInterval {
  return { lo: prefix, hi: prefixRangeEnd(prefix) };
}

/**
 * True when `key` starts with `prefix`. A loop, several times cheaper than Buffer#compare's argument checks
 * for short prefixes; backwards, because routed prefixes share `/registry/` and differ at the end.
 */
export function startsWith(key: Buffer, prefix: Buffer): boolean {
  const n = prefix.length;
  if (key.length < n) return false;
  for (let i = n - 1; i >= 0; i--) if (key[i] !== prefix[i]) return false;
  return true;
}

/**
 * Bytewise order of `a` and `b` (negative, zero, positive), as Buffer.compare; a loop, because keys are short
 * and the native call costs more than the comparison.
 */
export function compareBytes(a: Buffer, b: Buffer): number {
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** True when the bytes key[start, end) equal `want`. */
function segmentEquals(key: Buffer, start: number, end: number, want: Buffer): boolean {
  const n = want.length;
  if (end - start !== n) return false;
  for (let i = 0; i < n; i++) if (key[start + i] !== want[i]) return false;
  return true;
}

const SLASH = 0x2f;

/** Position of the next `/` at or after `from`, or -1 (a loop: Buffer#indexOf is a slower native call). */
function nextSlash(key: Buffer, from: number): number {
  const n = key.length;
  for (let i = from; i < n; i++) if (key[i] === SLASH) return i;
  return -1;
}

/**
 * FNV-1a of bytes [start, end), folded to a small integer: a Map key that names a resource without
 * materialising a string (a Buffer-to-string conversion costs more than the rest of a lookup).
 */
export function bytesHash(buf: Buffer, start = 0, end = buf.length): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  return h & 0x3fffffff;
}

// A module-local copy: imported bindings can compile to getter calls (tsx), too slow for every lookup.
const REGISTRY = REGISTRY_PREFIX_BYTES;
const SERVICES = Buffer.from('services');
const SPECS = Buffer.from('specs');
const ENDPOINTS = Buffer.from('endpoints');
const EMPTY = Buffer.alloc(0);

/**
 * One key as the matchers see it, with what several rules need computed once and only when first needed:
 * its text (regexp rules) and its namespaced-built-in shape (namespace rules). The router reuses one view
 * for every lookup, so a lookup allocates nothing that no rule asked for.
 */
export class KeyView {
  key: Buffer = EMPTY;
  private text: string | undefined;
  /** 0 = not parsed yet, 1 = parsed and shaped like a namespaced built-in key, 2 = not such a key. */
  private shape = 0;
  /** -1 = not computed yet. */
  private resHash = -1;
  /** Storage path of a namespaced-shaped key's resource, [resStart, resEnd): `pods`, `services/specs`. */
  resStart = 0;
  resEnd = 0;
  /** Namespace segment [nsStart, nsEnd) of a namespaced-shaped key. */
  nsStart = 0;
  nsEnd = 0;

  /** Points the view at `key`, dropping what was computed for the previous one. */
  reset(key: Buffer): this {
    this.key = key;
    this.text = undefined;
    this.shape = 0;
    this.resHash = -1;
    return this;
  }

  /** The key as text: UTF-8, invalid bytes read as U+FFFD (as Go's regexp, which the old product used, reads them). */
  keyText(): string {
    return (this.text ??= this.key.toString('utf8'));
  }

  /**
   * True when the key is `/registry/<r>/<ns>/...` or `/registry/services/(specs|endpoints)/<ns>/...`, i.e.
   * lies under some `namespacedKeyPrefix(r, ns)`; sets resStart/resEnd and nsStart/nsEnd.
   */
  namespacedShape(): boolean {
    if (this.shape === 0) this.shape = this.parseNamespaced() ? 1 : 2;
    return this.shape === 1;
  }

  /** {@link bytesHash} of the storage path of a namespaced-shaped key. */
  resourceHash(): number {
    if (this.resHash < 0) this.resHash = bytesHash(this.key, this.resStart, this.resEnd);
    return this.resHash;
  }

  private parseNamespaced(): boolean {
    const key = this.key;
    if (!startsWith(key, REGISTRY)) return false;
    const resStart = REGISTRY.length;
    let resEnd = nextSlash(key, resStart);
    if (resEnd < 0) return false;
    if (segmentEquals(key, resStart, resEnd, SERVICES)) {
      // services and endpoints are the only two-segment storage paths; no built-in is stored as bare
      // /registry/services/<ns>/
      const subEnd = nextSlash(key, resEnd + 1);
      if (subEnd < 0) return false;
      if (!segmentEquals(key, resEnd + 1, subEnd, SPECS) && !segmentEquals(key, resEnd + 1, subEnd, ENDPOINTS)) return false;
      resEnd = subEnd;
    }
    const nsStart = resEnd + 1;
    const nsEnd = nextSlash(key, nsStart);
    if (nsEnd < 0) return false;
    this.resStart = resStart;
    this.resEnd = resEnd;
    this.nsStart = nsStart;
    this.nsEnd = nsEnd;
    return true;
  }
}

/** A compiled rule. */
export interface RuleMatcher {
  /** The rule this was compiled from. */
  readonly rule: BackendRule;
  /** The backend the rule routes to (the rule's name). */
  readonly backend: string;
  /**
   * Exactly the keys the rule matches, as intervals sorted by `lo` (nested or overlapping is possible), or
   * undefined when the key set cannot be analysed (regexp rules).
   */
  readonly intervals: readonly KeyInterval[] | undefined;
  /** Does this rule route the single key `key`? */
  matchesKey(key: Buffer): boolean;
  /** {@link matchesKey} on a view the caller reuses across rules and lookups. */
  matchesView(view: KeyView): boolean;
  /**
   * Could a key this rule matches fall in [start, end)? `end` undefined = the single key `start`; empty =
   * to the end of the keyspace. May say yes wrongly (costs a query), never no wrongly.
   */
  mayHoldRange(start: Buffer, end: Buffer | undefined): boolean;
}

/** True when [iv.lo, iv.hi) and a non-empty [lo, hi) share a key (`hi` undefined = unbounded). */
function overlaps(iv: KeyInterval, lo: Buffer, hi: Buffer | undefined): boolean {
  if (iv.hi !== undefined && compareBytes(lo, iv.hi) >= 0) return false;
  return hi === undefined || compareBytes(iv.lo, hi) < 0;
}

abstract class BaseMatcher implements RuleMatcher {
  abstract readonly intervals: readonly KeyInterval[] | undefined;
  constructor(readonly rule: BackendRule) {}
  get backend(): string {
    return this.rule.name;
  }
  abstract matchesView(view: KeyView): boolean;
  matchesKey(key: Buffer): boolean {
    return this.matchesView(new KeyView().reset(key));
  }
  mayHoldRange(start: Buffer, end: Buffer | undefined): boolean {
    if (end === undefined) return this.matchesKey(start);
    const hi = end.length === 0 ? undefined : end;
    if (hi !== undefined && compareBytes(start, hi) >= 0) return false; // an empty range holds nothing
    if (this.intervals === undefined) return true;
    for (const iv of this.intervals) if (overlaps(iv, start, hi)) return true;
    return false;
  }
}

/** Rules whose key set is one byte prefix (prefix, customresource). */
class PrefixMatcher extends BaseMatcher {
  readonly intervals: readonly KeyInterval[];
  constructor(
    rule: BackendRule,
    private readonly prefix: Buffer,
  ) {
    super(rule);
    this.intervals = [prefixInterval(prefix)];
  }
  matchesView(view: KeyView): boolean {
    return startsWith(view.key, this.prefix);
  }
}

/** Namespace rules: `/registry/<r>/<ns>/` for each routed resource r (services and endpoints under services/). */
class NamespaceMatcher extends BaseMatcher {
  readonly intervals: readonly KeyInterval[];
  private readonly ns: Buffer;
  /** Storage paths of the routed resources as bytes, by {@link bytesHash}. */
  private readonly paths = new Map<number, Buffer[]>();
  constructor(rule: BackendRule, namespace: string, kinds: readonly string[]) {
    super(rule);
    this.ns = Buffer.from(namespace, 'utf8');
    const prefixes: Buffer[] = [];
    // A namespace segment cannot hold a slash; such a rule would claim keys the segment parser never sees.
    if (!namespace.includes('/')) {
      for (const kind of kinds) {
        const path = storagePath(kind); // undefined for a dotted (custom resource) or otherwise impossible kind
        if (path === undefined) continue;
        const bytes = Buffer.from(path, 'utf8');
        const same = this.paths.get(bytesHash(bytes));
        if (same?.some((p) => p.equals(bytes))) continue;
        if (same) same.push(bytes);
        else this.paths.set(bytesHash(bytes), [bytes]);
        prefixes.push(Buffer.from(`${REGISTRY_PREFIX}${path}/${namespace}/`, 'utf8'));
      }
    }
    this.intervals = prefixes.sort(Buffer.compare).map(prefixInterval);
  }
  matchesView(view: KeyView): boolean {
    if (!view.namespacedShape()) return false;
    const key = view.key;
    // The namespace is a plain byte compare and rejects most keys before the resource is looked at.
    if (!segmentEquals(key, view.nsStart, view.nsEnd, this.ns)) return false;
    const candidates = this.paths.get(view.resourceHash());
    if (candidates === undefined) return false;
    for (const p of candidates) if (segmentEquals(key, view.resStart, view.resEnd, p)) return true;
    return false;
  }
}

/**
 * The ASCII text every match of `source` must start with, when the pattern is anchored with `^` and has no
 * alternation; '' when nothing is known. Conservative: it stops at the first character that is not a plain
 * ASCII literal or that a quantifier follows.
 */
export function regexpLiteralPrefix(source: string): string {
  if (!source.startsWith('^') || source.includes('|')) return '';
  let out = '';
  let i = 1;
  while (i < source.length) {
    const c = source[i]!;
    let literal: string;
    if (c === '\\') {
      const d = source[i + 1];
      // \d, \w, \b, \1, \u0041, \x41, \cA ... are classes, assertions or codes, not the letter itself.
      if (d === undefined || /[0-9A-Za-z]/.test(d)) break;
      literal = d;
    } else {
      if ('^$.*+?()[]{}'.includes(c)) break;
      literal = c;
    }
    if (literal.charCodeAt(0) >= 0x80) break; // keeps the byte compare exact against UTF-8 decoded text
    const next = i + (c === '\\' ? 2 : 1);
    const q = source[next];
    if (q === '*' || q === '+' || q === '?' || q === '{') break;
    out += literal;
    i = next;
  }
  return out;
}

/** Regexp rules: `key` for single keys, else `prefix`; unanchored `test` against the key's text. */
class RegexpMatcher extends BaseMatcher {
  readonly intervals = undefined;
  private readonly re: RegExp;
  /** Bytes every matching key starts with (from a `^literal` pattern): skips the regexp for most keys. */
  private readonly literal: Buffer;
  constructor(rule: BackendRule, source: string) {
    super(rule);
    this.re = new RegExp(source); // no flags: `test` keeps no lastIndex state
    this.literal = Buffer.from(regexpLiteralPrefix(source), 'latin1');
  }
  matchesView(view: KeyView): boolean {
    if (this.literal.length > 0 && !startsWith(view.key, this.literal)) return false;
    return this.re.test(view.keyText());
  }
  override mayHoldRange(start: Buffer, end: Buffer | undefined): boolean {
    if (end === undefined) return this.matchesKey(start);
    return true; // its key set cannot be analysed: any range
  }
}

/** A rule that matches nothing (no match block or an empty regexp; validation rejects these, compile does not throw). */
class NothingMatcher extends BaseMatcher {
  readonly intervals: readonly KeyInterval[] = [];
  matchesView(): boolean {
    return false;
  }
}

/**
 * Compiles one rule of a validated topology.
 *
 * - `prefix {prefix: P}`: every key starting with the bytes `/registry/` + P. Literal bytes, no segment
 *   logic: `pods` also matches `/registry/podsecuritypolicy/...` (and `/registry/podsecuritypolicies...`);
 *   users write `pods/` to mean only pods.
 * - `customresource {group, kind}`: keys under `/registry/<group>/<kind>/`; empty or missing kind = the whole
 *   group, `/registry/<group>/`.
 * - `namespace {namespace, kinds}`: keys under `/registry/<r>/<namespace>/` (services and endpoints under
 *   `/registry/services/specs|endpoints/<namespace>/`) for r in `kinds` (API plurals and storage names both
 *   accepted; a kind not in the curated list is taken as a namespaced built-in; dotted kinds, which name
 *   custom resources, are ignored), or in NAMESPACED_RESOURCES when `kinds` is missing or empty. Custom
 *   resources and cluster-scoped keys such as `/registry/namespaces/<namespace>` are never matched.
 * - `regexp {key, prefix}`: a single key matches `key` if given, else `prefix`; any range may hold matches.
 */
export function compileRule(rule: BackendRule): RuleMatcher {
  if (rule.prefix) return new PrefixMatcher(rule, Buffer.from(REGISTRY_PREFIX + rule.prefix.prefix, 'utf8'));
  if (rule.customresource) {
    const { group, kind } = rule.customresource;
    const path = kind ? `${group}/${kind}/` : `${group}/`;
    return new PrefixMatcher(rule, Buffer.from(REGISTRY_PREFIX + path, 'utf8'));
  }
  if (rule.namespace) {
    const kinds = rule.namespace.kinds?.length ? rule.namespace.kinds : NAMESPACED_RESOURCES;
    return new NamespaceMatcher(rule, rule.namespace.namespace, kinds);
  }
  const source = rule.regexp?.key ?? rule.regexp?.prefix;
  return source === undefined ? new NothingMatcher(rule) : new RegexpMatcher(rule, source);
}

/**
 * Routing of keys and key ranges to backends, from the ordered rules of a topology: the first rule that
 * matches a key owns it, unmatched keys belong to the default backend. Pure and synchronous; rebuilt when
 * the topology changes.
 */
import type { BackendRule } from '../topology/schema.js';
import { KeyView, compareBytes, compileRule, type KeyInterval, type RuleMatcher } from './rules.js';

/** The name the default backend (the middleware's --endpoint, holder of the meta store) has in routing. */
export const DEFAULT_BACKEND = '';

const EMPTY = Buffer.alloc(0);

/** Sorted, disjoint, non-touching intervals covering the union of `a` and `b`. */
function union(a: readonly KeyInterval[], b: readonly KeyInterval[]): KeyInterval[] {
  const all = [...a, ...b].sort((x, y) => compareBytes(x.lo, y.lo));
  const out: KeyInterval[] = [];
  for (const iv of all) {
    const last = out[out.length - 1];
    // Touching intervals are merged too, so containment in the union is containment in one piece.
    if (last && (last.hi === undefined || compareBytes(iv.lo, last.hi) <= 0)) {
      if (last.hi !== undefined && (iv.hi === undefined || compareBytes(iv.hi, last.hi) > 0)) {
        out[out.length - 1] = { lo: last.lo, hi: iv.hi };
      }
    } else {
      out.push(iv);
    }
  }
  return out;
}

/** True when the non-empty [lo, hi) lies inside `covered` (the output of `union`). */
function contains(covered: readonly KeyInterval[], lo: Buffer, hi: Buffer | undefined): boolean {
  // The last piece starting at or before lo is the only one that can contain it.
  let a = 0;
  let b = covered.length;
  while (a < b) {
    const mid = (a + b) >>> 1;
    if (compareBytes(covered[mid]!.lo, lo) <= 0) a = mid + 1;
    else b = mid;
  }
  if (a === 0) return false;
  const piece = covered[a - 1]!;
  return piece.hi === undefined || (hi !== undefined && compareBytes(hi, piece.hi) <= 0);
}

function maxLo(a: Buffer, b: Buffer): Buffer {
  return compareBytes(a, b) >= 0 ? a : b;
}

function minHi(a: Buffer | undefined, b: Buffer | undefined): Buffer | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return compareBytes(a, b) <= 0 ? a : b;
}

/** Routes keys and ranges by the ordered rules of a validated topology. */
export class Router {
  readonly rules: readonly BackendRule[];
  private readonly matchers: readonly RuleMatcher[];
  private readonly names: readonly string[];
  /**
   * coveredBefore[i]: keys provably taken by rules before i (the union of the analysable ones' key sets);
   * coveredBefore[rules.length]: keys provably not the default backend's. Static, so computed once.
   */
  private readonly coveredBefore: readonly (readonly KeyInterval[])[];
  /** Reused by every lookup (lookups are synchronous, so one is enough). */
  private readonly view = new KeyView();

  /** `rules`: the rules of an already validated TopologyDocument, in order. */
  constructor(rules: readonly BackendRule[]) {
    this.rules = Object.freeze([...rules]);
    this.matchers = this.rules.map(compileRule);
    this.names = this.rules.map((r) => r.name);
    const covered: KeyInterval[][] = [[]];
    for (const m of this.matchers) {
      const before = covered[covered.length - 1]!;
      covered.push(m.intervals ? union(before, m.intervals) : before); // regexp rules take nothing provably
    }
    this.coveredBefore = covered;
  }

  /** The backend owning `key`: the name of the first rule that matches it, else DEFAULT_BACKEND. */
  backendFor(key: Buffer): string {
    const view = this.view.reset(key);
    const matchers = this.matchers;
    let owner = DEFAULT_BACKEND;
    for (let i = 0; i < matchers.length; i++) {
      if (matchers[i]!.matchesView(view)) {
        owner = this.names[i]!;
        break;
      }
    }
    view.reset(EMPTY); // do not keep the caller's key alive
    return owner;
  }

  /**
   * Backends that may hold keys in [start, end) (`end` undefined = the single key `start`, then exactly
   * [backendFor(start)]; empty = to the end of the keyspace): DEFAULT_BACKEND first, then rule order, no
   * duplicates. A rule's backend is included if the rule may hold a key of the range that no earlier rule
   * takes; the default backend is left out only when earlier rules provably take the whole range. An empty
   * range (end <= start) holds no key and gets [DEFAULT_BACKEND], so the caller still has one backend to ask.
   */
  backendsFor(start: Buffer, end: Buffer | undefined): string[] {
    if (end === undefined) return [this.backendFor(start)];
    const hi = end.length === 0 ? undefined : end;
    if (hi !== undefined && compareBytes(start, hi) >= 0) return [DEFAULT_BACKEND];
    const n = this.matchers.length;
    const out: string[] = [];
    if (!contains(this.coveredBefore[n]!, start, hi)) out.push(DEFAULT_BACKEND);
    for (let i = 0; i < n; i++) {
      const covered = this.coveredBefore[i]!;
      // Earlier rules take the whole range, and later rules only see less of it.
      if (contains(covered, start, hi)) break;
      const m = this.matchers[i]!;
      if (!this.takesSome(m, covered, start, hi)) continue;
      const name = this.names[i]!;
      if (!out.includes(name)) out.push(name);
    }
    return out;
  }

  /** May `m` own a key of the non-empty [start, hi) that is not in `covered`? */
  private takesSome(m: RuleMatcher, covered: readonly KeyInterval[], start: Buffer, hi: Buffer | undefined): boolean {
    if (m.intervals === undefined) return true; // not analysable; the range is not wholly covered (checked)
    for (const iv of m.intervals) {
      const lo = maxLo(iv.lo, start);
      const top = minHi(iv.hi, hi);
      if (top !== undefined && compareBytes(lo, top) >= 0) continue; // no overlap with the range
      if (!contains(covered, lo, top)) return true;
    }
    return false;
  }
}

/** Seeded generators of realistic Kubernetes keys, ranges and topologies for the router's property tests. */
import type { BackendRule } from '../../middleware/src/topology/schema.js';
import { NAMESPACED_RESOURCES } from '../../middleware/src/router/key-layout.js';
import { CLUSTER_RESOURCES } from '../support/storage-keys.js';
import { prefixRangeEnd } from '../../middleware/src/router/rules.js';

/** mulberry32: small, fast, deterministic. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Gen {
  readonly random: () => number;
  constructor(seed: number) {
    this.random = rng(seed);
  }
  int(n: number): number {
    return Math.floor(this.random() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  chance(p: number): boolean {
    return this.random() < p;
  }
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.pick([0, 0x2f, 0x61, 0x7f, 0x80, 0xc3, 0xfe, 0xff, this.int(256)]);
    return out;
  }

  readonly namespaces = ['kube-system', 'default', 'team-a', 'kube', 'kube-system-2', 'specs', 'z'];
  readonly groups = ['stable.example.com', 'apiextensions.k8s.io', 'apiregistration.k8s.io', 'example.com', 'stable.example.co'];
  readonly plurals = ['shirts', 'shirt', 'customresourcedefinitions', 'apiservices', 'pods'];
  readonly names = ['a', 'x', 'coredns-1', 'kubernetes', 'kube-system', 'zz', 'ünï'];
  readonly extraResources = ['podsecuritypolicy', 'podsx', 'pod', 'services', 'somethingnew'];

  /** A key from one of the layouts the apiserver writes, or a near miss, or junk. */
  key(): Buffer {
    const ns = this.pick(this.namespaces);
    const name = this.pick(this.names);
    switch (this.int(12)) {
      case 0:
      case 1:
      case 2:
        return Buffer.from(`/registry/${this.pick(NAMESPACED_RESOURCES)}/${ns}/${name}`);
      case 3:
        return Buffer.from(`/registry/services/${this.pick(['specs', 'endpoints', 'other'])}/${ns}/${name}`);
      case 4:
        return Buffer.from(`/registry/${this.pick(CLUSTER_RESOURCES)}/${this.chance(0.5) ? ns : name}`);
      case 5:
        return Buffer.from(
          `/registry/${this.pick(this.groups)}/${this.pick(this.plurals)}/${this.chance(0.5) ? `${ns}/` : ''}${name}`,
        );
      case 6:
        return Buffer.from(this.pick(['/registry/masterleases/10.0.0.1', '/registry/ranges/serviceips', '/registry/health', 'compact_rev_key', 'health']));
      case 7:
        return Buffer.from(`/registry/${this.pick(this.extraResources)}/${ns}/${name}`);
      case 8: {
        // a truncated key: a list prefix, or a cut in the middle of a segment
        const full = Buffer.from(`/registry/${this.pick(NAMESPACED_RESOURCES)}/${ns}/${name}`);
        return full.subarray(0, this.int(full.length + 1));
      }
      case 9:
        return Buffer.concat([Buffer.from(`/registry/${this.pick(['pods', 'secrets', 'stable.example.com/shirts'])}/${ns}/`), this.bytes(1 + this.int(4))]);
      case 10:
        return this.bytes(this.int(6));
      default:
        return Buffer.concat([Buffer.from('/registry/'), this.bytes(this.int(8))]);
    }
  }

  /** [start, end) in the caller's form: end undefined = single key, empty = to the end of the keyspace. */
  range(): { start: Buffer; end: Buffer | undefined } {
    switch (this.int(6)) {
      case 0:
        return { start: this.key(), end: undefined };
      case 1: {
        const p = this.key();
        return { start: p, end: prefixRangeEnd(p) ?? Buffer.alloc(0) };
      }
      case 2:
        return { start: this.key(), end: Buffer.alloc(0) };
      case 3:
        return { start: Buffer.from([0]), end: Buffer.alloc(0) };
      default: {
        const a = this.key();
        const b = this.key();
        return Buffer.compare(a, b) <= 0 ? { start: a, end: b } : { start: b, end: a };
      }
    }
  }

  /** Keys inside [start, end): the start, extensions of it, and pool keys that fall inside. */
  keysIn(start: Buffer, end: Buffer | undefined, pool: readonly Buffer[]): Buffer[] {
    const inside = (k: Buffer) =>
      end === undefined ? k.equals(start) : Buffer.compare(k, start) >= 0 && (end.length === 0 || Buffer.compare(k, end) < 0);
    const candidates = [start, ...pool];
    for (let i = 0; i < 20; i++) candidates.push(Buffer.concat([start, Buffer.from(this.pick(['/', 'x/', `${this.pick(this.namespaces)}/a`, '\u00ff'])), this.bytes(this.int(3))]));
    if (end !== undefined && end.length > 0) {
      // just below the end
      const below = Buffer.from(end);
      if (below[below.length - 1]! > 0) {
        below[below.length - 1]! -= 1;
        candidates.push(below, Buffer.concat([below, Buffer.from('/registry/pods/kube-system/x')]));
      }
    }
    return candidates.filter(inside);
  }

  /** A valid topology of 0..6 rules of every match type. */
  rules(): BackendRule[] {
    const n = this.int(7);
    const rules: BackendRule[] = [];
    for (let i = 0; i < n; i++) {
      const name = `b${i}`;
      const endpoint = `sqlite://./b${i}.db`;
      switch (this.int(4)) {
        case 0:
          rules.push({
            name,
            endpoint,
            prefix: { prefix: this.pick(['pods', 'pods/', 'services/', 'services/specs/kube-system/', 'stable.example.com', 'p', 'configmaps/default/', 'namespaces/kube-system', 'secrets']) },
          });
          break;
        case 1: {
          const kinds = this.chance(0.4)
            ? undefined
            : Array.from({ length: this.int(4) }, () =>
                this.pick(['pods', 'services', 'endpoints', 'replicationcontrollers', 'namespaces', 'shirts.stable.example.com', 'secrets', 'podsx', 'services/specs']),
              );
          rules.push({ name, endpoint, namespace: kinds ? { namespace: this.pick(this.namespaces), kinds } : { namespace: this.pick(this.namespaces) } });
          break;
        }
        case 2:
          rules.push({
            name,
            endpoint,
            customresource: { group: this.pick(this.groups), ...(this.chance(0.6) ? { kind: this.pick([...this.plurals, '']) } : {}) },
          });
          break;
        default:
          rules.push({
            name,
            endpoint,
            regexp: this.pick([
              { key: '^/registry/secrets/' },
              { key: 'kube-system' },
              { prefix: '^/registry/(roles|rolebindings)/' },
              { prefix: 'x$', key: '^/registry/pods/default/' },
              { key: '\\.example\\.com/' },
            ]),
          });
      }
    }
    return rules;
  }
}

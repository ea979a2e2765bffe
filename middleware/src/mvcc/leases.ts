/**
 * Lease state: which leases exist, when they expire, which live keys they carry. The durable copy is in
 * the backend (`leases` table; keys carry their lease ID), loaded at start so expiry survives restarts.
 * Changes to this state are made by the store after the database transaction that caused them commits.
 */
import type { KeyRow, LeaseRow } from '../backends/backend.js';

export interface LeaseState extends LeaseRow {
  /** Live keys attached, as latin1 strings (a lossless byte-to-string map). */
  keys: Set<string>;
}

/** etcd's upper bound on a lease TTL, in seconds. */
export const MAX_LEASE_TTL = 9_000_000_000;

export class LeaseTable {
  private readonly byId = new Map<string, LeaseState>();
  private readonly keyLease = new Map<string, string>();

  load(leases: LeaseRow[], leasedKeys: { key: Buffer; lease: string }[]): void {
    this.byId.clear();
    this.keyLease.clear();
    for (const l of leases) this.byId.set(l.id, { ...l, keys: new Set() });
    for (const { key, lease } of leasedKeys) this.attach(key.toString('latin1'), lease);
  }

  get(id: string): LeaseState | undefined {
    return this.byId.get(id);
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  all(): LeaseState[] {
    return [...this.byId.values()];
  }

  get size(): number {
    return this.byId.size;
  }

  add(lease: LeaseRow): void {
    this.byId.set(lease.id, { ...lease, keys: new Set() });
  }

  remove(id: string): void {
    const l = this.byId.get(id);
    if (!l) return;
    for (const k of l.keys) this.keyLease.delete(k);
    this.byId.delete(id);
  }

  /** Follows committed rows: a put moves its key to the row's lease (or none), a delete detaches it. */
  applyRows(rows: KeyRow[]): void {
    for (const row of rows) {
      const k = row.key.toString('latin1');
      const old = this.keyLease.get(k);
      if (old !== undefined) {
        this.byId.get(old)?.keys.delete(k);
        this.keyLease.delete(k);
      }
      if (!row.deleted && row.lease !== '0') this.attach(k, row.lease);
    }
  }

  /** Leases whose expiry has passed at `now` (ms epoch). */
  expired(now: number): LeaseState[] {
    const out: LeaseState[] = [];
    for (const l of this.byId.values()) if (l.expiresAt <= now) out.push(l);
    return out;
  }

  /** Earliest expiry, or undefined with no leases. */
  nextExpiry(): number | undefined {
    let min: number | undefined;
    for (const l of this.byId.values()) if (min === undefined || l.expiresAt < min) min = l.expiresAt;
    return min;
  }

  private attach(k: string, lease: string): void {
    const l = this.byId.get(lease);
    if (!l) return; // the lease is gone; the key will not expire with it (as in etcd after revoke races)
    l.keys.add(k);
    this.keyLease.set(k, lease);
  }
}

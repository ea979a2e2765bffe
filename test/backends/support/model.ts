/**
 * A reference log for backend tests: writes rows through a Backend the way the middleware's sequencer does
 * (latest version, create/prev revision, version, tombstones) and keeps every row in memory, so each read a
 * backend answers can be compared with what it must answer (computed here the slow, obvious way).
 */
import { inWriteTxn, type Backend, type ChangeRow, type KeyRow, type RangeQuery, type WriteTxn } from '../../../middleware/src/backends/backend.js';

export type Op = { put: Buffer | string; value?: Buffer | string; lease?: string } | { del: Buffer | string };

const bytes = (v: Buffer | string) => (typeof v === 'string' ? Buffer.from(v, 'utf8') : v);

export class ModelLog {
  readonly rows: KeyRow[] = [];
  revision = 0;

  constructor(readonly backend: Backend) {}

  /** Applies `ops` as one revision in one write transaction; returns the revision (deletes of absent keys write nothing). */
  async commit(...ops: Op[]): Promise<number> {
    const rev = this.revision + 1;
    const written = await inWriteTxn(this.backend, async (tx) => this.apply(tx, rev, ops));
    this.rows.push(...written);
    this.revision = rev;
    return rev;
  }

  /** The rows `commit` would write, inserted through `tx` (also for tests that drive `write` themselves). */
  async apply(tx: WriteTxn, rev: number, ops: Op[]): Promise<KeyRow[]> {
    const written: KeyRow[] = [];
    for (const op of ops) {
      const key = bytes('put' in op ? op.put : op.del);
      const prev = await tx.latest(key);
      const live = prev && !prev.deleted ? prev : undefined;
      let row: KeyRow;
      if ('put' in op) {
        row = {
          key,
          value: bytes(op.value ?? `value of ${key.toString('hex')} at ${rev}`),
          modRevision: rev,
          sub: written.length,
          createRevision: live ? live.createRevision : rev,
          prevRevision: live ? live.modRevision : 0,
          version: live ? live.version + 1 : 1,
          lease: op.lease ?? '0',
          deleted: false,
        };
      } else {
        if (!live) continue;
        row = {
          key,
          value: Buffer.alloc(0),
          modRevision: rev,
          sub: written.length,
          createRevision: live.createRevision,
          prevRevision: live.modRevision,
          version: 0,
          lease: '0',
          deleted: true,
        };
      }
      await tx.insert([row]);
      written.push(row);
    }
    return written;
  }

  /** What `Backend.range` must return. */
  range(q: RangeQuery): KeyRow[] {
    const latest = new Map<string, KeyRow>();
    for (const r of this.rows) {
      if (r.modRevision > q.revision) continue;
      const k = r.key.toString('hex');
      const seen = latest.get(k);
      if (!seen || seen.modRevision < r.modRevision) latest.set(k, r);
    }
    const inRange = (key: Buffer) => {
      if (q.end === undefined) return key.equals(q.start);
      return Buffer.compare(key, q.start) >= 0 && (q.end.length === 0 || Buffer.compare(key, q.end) < 0);
    };
    const live = [...latest.values()].filter((r) => !r.deleted && inRange(r.key)).sort((a, b) => Buffer.compare(a.key, b.key));
    const limited = q.limit > 0 ? live.slice(0, q.limit) : live;
    return q.keysOnly ? limited.map((r) => ({ ...r, value: Buffer.alloc(0) })) : limited;
  }

  count(start: Buffer, end: Buffer | undefined, revision: number): number {
    return this.range({ start, end, revision, limit: 0 }).length;
  }

  /** What `Backend.changes` must return while nothing is compacted. */
  changes(from: number, to: number, limit: number): ChangeRow[] {
    const rows = this.rows.filter((r) => r.modRevision >= from && r.modRevision <= to);
    const limited = limit > 0 ? rows.slice(0, limit) : rows;
    return limited.map((r) => {
      const prev = r.prevRevision === 0 ? undefined : this.rows.find((p) => p.key.equals(r.key) && p.modRevision === r.prevRevision);
      return prev ? { ...r, prev } : { ...r };
    });
  }
}

/**
 * The migration capability (backends/movable.ts) over SQL, the same for every dialect: the backend supplies
 * a read on its read connections and write transactions that run raw statements.
 */
import { inWriteTxn, type KeyRow, type RangeQuery, type WriteTxn } from '../backend.js';
import type { KeyMoves } from '../movable.js';
import { toKeyRow, type DbRow } from './rows.js';
import { rangeShape, type Statements } from './statements.js';

/** A SQL backend's write transaction, with raw statements for the migration's copies and drops. */
export interface SqlWriteTxn extends WriteTxn {
  query(sql: string, params: unknown[]): Promise<DbRow[]> | DbRow[];
  execute(sql: string, params: unknown[]): Promise<number> | number;
}

export interface SqlAccess {
  /** A read on the backend's read connections. */
  read(sql: string, params: unknown[]): Promise<DbRow[]>;
  begin(): Promise<SqlWriteTxn>;
}

export class SqlMoves implements KeyMoves {
  constructor(
    private readonly st: Statements,
    private readonly db: SqlAccess,
  ) {}

  async rangeWithTombstones(q: RangeQuery): Promise<KeyRow[]> {
    if (q.end === undefined) return (await this.db.read(this.st.get(q.keysOnly === true), [q.start, q.revision])).map((r) => toKeyRow(r));
    const shape = rangeShape(q);
    return (await this.db.read(this.st.rangeWithTombstones(shape), this.st.rangeParams(q, shape))).map((r) => toKeyRow(r));
  }

  async history(start: Buffer, end: Buffer, limitRows: number): Promise<KeyRow[]> {
    const bounded = end.length > 0;
    const rows = (await this.db.read(this.st.history(bounded), bounded ? [start, end, limitRows] : [start, limitRows])).map((r) => toKeyRow(r));
    if (rows.length < limitRows) return rows;
    // the page may have cut the last key's history short: leave that key to the next page
    const last = rows[rows.length - 1]!.key;
    const whole = rows.filter((r) => !r.key.equals(last));
    if (whole.length > 0) return whole;
    return (await this.db.read(this.st.keyHistory, [last])).map((r) => toKeyRow(r));
  }

  async copyIn(rows: KeyRow[]): Promise<number> {
    if (rows.length === 0) return 0;
    return inWriteTxn(this.db, async (tx) => {
      const stored = new Map<string, Set<number>>();
      const missing: KeyRow[] = [];
      for (const row of rows) {
        const id = row.key.toString('latin1');
        let revs = stored.get(id);
        if (!revs) {
          revs = new Set((await tx.query(this.st.keyRevisions, [row.key])).map((r) => Number(r.rev)));
          stored.set(id, revs);
        }
        if (!revs.has(row.modRevision)) missing.push(row);
      }
      if (missing.length > 0) await tx.insert(missing);
      return missing.length;
    });
  }

  async dropOut(keys: { key: Buffer; upTo: number }[]): Promise<number> {
    if (keys.length === 0) return 0;
    return inWriteTxn(this.db, async (tx) => {
      let deleted = 0;
      for (const k of keys) deleted += await tx.execute(this.st.dropKey, [k.key, k.upTo]);
      return deleted;
    });
  }
}

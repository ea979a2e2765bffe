/**
 * The migration capability (backends/movable.ts) over SQL, the same for every dialect: the backend supplies
 * a read on its read connections and write transactions that run raw statements.
 */
import { inWriteTxn, type KeyRow, type RangeQuery, type WriteTxn } from '../backend.js';
import type { KeyMoves } from '../movable.js';
import type { CompactionProgress } from './compaction.js';
import { rowsToCopy } from './copied-rows.js';
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
  /**
   * The backend's compaction progress, told where a copy stored rows so that its walk goes over them
   * (compaction.ts). Without it, history copied behind a finished compaction is never compacted in this
   * process, and can outlive the rows that supersede it.
   */
  compaction?: Pick<CompactionProgress, 'copiedIn'>;
}

/** Keys per IN list: well under every database's parameter limit (SQLite's default is 32766). */
const IN_LIST = 500;

function chunks<T>(items: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += IN_LIST) out.push(items.slice(i, i + IN_LIST));
  return out;
}

function distinctKeys(keys: Buffer[]): Buffer[] {
  const seen = new Map<string, Buffer>();
  for (const k of keys) seen.set(k.toString('latin1'), k);
  return [...seen.values()];
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

  /** Stores the rows `rowsToCopy` leaves (copied-rows.ts: never a row the target's compaction removed). */
  async copyIn(rows: KeyRow[]): Promise<number> {
    if (rows.length === 0) return 0;
    let lowest = Infinity;
    try {
      return await inWriteTxn(this.db, async (tx) => {
        const keys = distinctKeys(rows.map((r) => r.key));
        const stored = new Set<string>();
        for (const chunk of chunks(keys)) {
          for (const r of await tx.query(this.st.keysRevisions(chunk.length), chunk)) stored.add(`${Number(r.rev)} ${(r.name as Buffer).toString('latin1')}`);
        }
        const missing = rowsToCopy(rows, (row) => stored.has(`${row.modRevision} ${row.key.toString('latin1')}`));
        if (missing.length === 0) return 0;
        lowest = missing.reduce((low, r) => Math.min(low, r.modRevision), Infinity);
        await tx.insert(missing);
        return missing.length;
      });
    } finally {
      // after the commit (a compaction batch scanning from here on sees the rows), and after a failed one
      // too: it may have committed
      if (lowest !== Infinity) this.db.compaction?.copiedIn(lowest);
    }
  }

  async dropOut(keys: Buffer[], upTo: number): Promise<number> {
    if (keys.length === 0) return 0;
    return inWriteTxn(this.db, async (tx) => {
      let deleted = 0;
      for (const chunk of chunks(distinctKeys(keys))) deleted += await tx.execute(this.st.dropKeys(chunk.length), [...chunk, upTo]);
      return deleted;
    });
  }
}

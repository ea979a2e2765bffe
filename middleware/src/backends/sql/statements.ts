/**
 * Every SQL statement of the log store, built once per dialect from shared text, with the parameter lists
 * that go with them. Query shapes are chosen to run on the two unique keys only (see schema.ts): (rev, sub)
 * for revision scans and (name, rev) for key scans and per-key lookups. test/backends/query-plans.test.ts
 * checks every statement with EXPLAIN on SQLite, PostgreSQL and MariaDB at 1M rows: no full scans except
 * `leasedKeys` (startup only), and no sorts for limited reads. PostgreSQL may sort an unlimited read (a
 * whole-resource list, unlimited changes) after a bitmap scan, measured no slower than the index order; it
 * may also find a superseded row by the (rev, sub) key, one row per probe while a revision holds one row.
 */
import type { RangeQuery } from '../backend.js';
import { marks, type SqlDialect } from './dialect.js';

/** `kv` columns in the order `rowParams` (rows.ts) binds them. */
export const KV_COLUMNS = ['rev', 'sub', 'name', 'value', 'create_rev', 'prev_rev', 'version', 'lease', 'deleted'] as const;

/** Which variant of the snapshot range query a `RangeQuery` needs (each is a separate cached statement). */
export interface RangeShape {
  /** Has an exclusive end key (false: to the end of the keyspace). */
  bounded: boolean;
  /** Has a LIMIT. */
  limited: boolean;
  keysOnly: boolean;
}

export function rangeShape(q: RangeQuery): RangeShape {
  return { bounded: q.end!.length > 0, limited: q.limit > 0, keysOnly: q.keysOnly === true };
}

export function shapeId(s: RangeShape): number {
  return (s.bounded ? 1 : 0) | (s.limited ? 2 : 0) | (s.keysOnly ? 4 : 0);
}

export class Statements {
  readonly maxRevision: string;
  readonly latest: string;
  readonly insertRow: string;
  readonly deleteRow: string;
  readonly revertRows: string;
  readonly compactScan: string;
  readonly metaGet: string;
  readonly metaLock: string;
  readonly metaSet: string;
  readonly leaseList: string;
  readonly leasePut: string;
  readonly leaseDelete: string;
  readonly leasedKeys: string;
  private readonly ranges = new Map<number, string>();
  private readonly gets = new Map<boolean, string>();
  private readonly counts = new Map<boolean, string>();
  private readonly changeQueries = new Map<boolean, string>();
  private readonly inserts = new Map<number, string>();
  private readonly rangesAll = new Map<number, string>();
  private readonly histories = new Map<boolean, string>();
  private readonly keyRevisionQueries = new Map<number, string>();
  private readonly dropQueries = new Map<number, string>();
  private readonly latestMany = new Map<number, string>();
  private readonly getMany = new Map<number, string>();
  /** Every row of one key, oldest first (migration: a key with more rows than a history page). */
  readonly keyHistory: string;

  constructor(private readonly d: SqlDialect) {
    const sql = (text: string) => d.placeholders(text);
    this.maxRevision = sql('SELECT MAX(rev) AS rev FROM kv');
    this.latest = sql(this.latestOf('?'));
    this.insertRow = sql(this.insertValues(1));
    this.deleteRow = sql('DELETE FROM kv WHERE name = ? AND rev = ?');
    this.revertRows = sql('DELETE FROM kv WHERE rev >= ? AND rev <= ?');
    // The (rev, sub) cursor as a range on rev plus a filter, which every planner runs as a range scan of the
    // (rev, sub) key; rows of the cursor's own revision up to its sub are skipped again, cheap unless a single
    // revision holds thousands of rows.
    this.compactScan = sql(
      'SELECT rev, sub, name, prev_rev, deleted FROM kv WHERE rev >= ? AND rev <= ? AND (rev > ? OR sub > ?) ORDER BY rev, sub LIMIT ?',
    );
    this.metaGet = sql('SELECT value FROM meta WHERE name = ?');
    // SQLite's BEGIN IMMEDIATE already excludes every other writer; the servers lock the row
    this.metaLock = sql(`SELECT value FROM meta WHERE name = ?${d.name === 'sqlite' ? '' : ' FOR UPDATE'}`);
    this.metaSet = sql(d.upsert('meta', 'name', ['name', 'value']));
    this.leaseList = sql(`SELECT ${d.int64Text('id')} AS id, ttl, expires_at FROM leases ORDER BY id`);
    this.leasePut = sql(d.upsert('leases', 'id', ['id', 'ttl', 'expires_at']));
    this.leaseDelete = sql('DELETE FROM leases WHERE id = ?');
    this.keyHistory = sql(`SELECT ${this.columns('kv', false)} FROM kv WHERE kv.name = ? ORDER BY kv.rev`);
    this.leasedKeys = sql(
      `SELECT kv.name, ${d.int64Text('kv.lease')} AS lease FROM kv WHERE kv.lease <> 0 AND kv.deleted = 0 ` +
        `AND NOT EXISTS (SELECT 1 FROM kv AS newer WHERE newer.name = kv.name AND newer.rev > kv.rev${d.probeFence}) ORDER BY kv.name`,
    );
  }

  /** Multi-row INSERT text with `?` placeholders already rewritten. */
  insertRows(n: number): string {
    let s = this.inserts.get(n);
    if (!s) {
      s = this.d.placeholders(this.insertValues(n));
      this.inserts.set(n, s);
    }
    return s;
  }

  /**
   * The newest row (tombstones included) of the key `name` (a placeholder or a column of an outer query):
   * one probe of the (name, rev) index from its newest end.
   */
  latestOf(name: string): string {
    return `SELECT ${this.columns('kv', false)} FROM kv WHERE kv.name = ${name} ORDER BY kv.rev DESC LIMIT 1`;
  }

  /**
   * The newest row of the key `name` at revision `rev` (placeholders or columns of an outer query),
   * tombstones included: one probe of the (name, rev) index.
   */
  getOf(name: string, rev: string, keysOnly = false): string {
    return `SELECT ${this.columns('kv', keysOnly)} FROM kv WHERE kv.name = ${name} AND kv.rev <= ${rev} ORDER BY kv.rev DESC LIMIT 1`;
  }

  /** `n` gets in one statement, each row tagged with its get's position `i`: UNION ALL of `getOf` probes. */
  getsOf(n: number): string {
    return this.cached(this.getMany, n, () => Array.from({ length: n }, () => `(${this.getOf('?', '?').replace('SELECT ', 'SELECT ? AS i, ')})`).join(' UNION ALL '));
  }

  /** The newest rows of `n` keys in one statement: `latest` for each, joined by UNION ALL. */
  latestOfKeys(n: number): string {
    return this.cached(this.latestMany, n, () => Array.from({ length: n }, () => `(${this.latestOf('?')})`).join(' UNION ALL '));
  }

  /** Newest row of one key at a revision (tombstones included; the caller hides them). */
  get(keysOnly: boolean): string {
    let s = this.gets.get(keysOnly);
    if (!s) {
      s = this.d.placeholders(this.getOf('?', '?', keysOnly));
      this.gets.set(keysOnly, s);
    }
    return s;
  }

  /**
   * Live latest rows of a key range at a revision: walk (name, rev) in key order, keep a row if it is not a
   * tombstone and no newer row of its key exists at or below the revision (one index probe per row).
   */
  range(shape: RangeShape): string {
    const id = shapeId(shape);
    let s = this.ranges.get(id);
    if (!s) {
      s = this.d.placeholders(
        `SELECT ${this.columns('kv', shape.keysOnly)} FROM kv WHERE ${this.snapshotFilter(shape.bounded)} ORDER BY kv.name` +
          (shape.limited ? ' LIMIT ?' : ''),
      );
      this.ranges.set(id, s);
    }
    return s;
  }

  rangeParams(q: RangeQuery, shape: RangeShape): unknown[] {
    const p: unknown[] = [q.start];
    if (shape.bounded) p.push(q.end);
    p.push(q.revision, q.revision);
    if (shape.limited) p.push(q.limit);
    return p;
  }

  /** Like `range`, tombstones included: the newest row per key at the revision, deleted or not (migration reads). */
  rangeWithTombstones(shape: RangeShape): string {
    const id = shapeId(shape);
    let s = this.rangesAll.get(id);
    if (!s) {
      s = this.d.placeholders(
        `SELECT ${this.columns('kv', shape.keysOnly)} FROM kv WHERE ${this.snapshotFilter(shape.bounded, true)} ORDER BY kv.name` +
          (shape.limited ? ' LIMIT ?' : ''),
      );
      this.rangesAll.set(id, s);
    }
    return s;
  }

  /** Rows of the keys from a start key (and before an end key), in (name, rev) order, limited: a migration page. */
  history(bounded: boolean): string {
    let s = this.histories.get(bounded);
    if (!s) {
      s = this.d.placeholders(
        `SELECT ${this.columns('kv', false)} FROM kv WHERE kv.name >= ?${bounded ? ' AND kv.name < ?' : ''} ORDER BY kv.name, kv.rev LIMIT ?`,
      );
      this.histories.set(bounded, s);
    }
    return s;
  }

  /** Revisions stored for `n` keys (migration: which copied rows a target already holds). */
  keysRevisions(n: number): string {
    return this.cached(this.keyRevisionQueries, n, () => `SELECT name, rev FROM kv WHERE name IN (${marks(n)})`);
  }

  /** Deletes the rows of `n` keys at or below a revision (migration: the source's copy, once the target holds it). */
  dropKeys(n: number): string {
    return this.cached(this.dropQueries, n, () => `DELETE FROM kv WHERE name IN (${marks(n)}) AND rev <= ?`);
  }

  private cached(cache: Map<number, string>, n: number, text: () => string): string {
    let s = cache.get(n);
    if (!s) {
      s = this.d.placeholders(text());
      cache.set(n, s);
    }
    return s;
  }

  count(bounded: boolean): string {
    let s = this.counts.get(bounded);
    if (!s) {
      s = this.d.placeholders(
        this.d.coveringKeyIndex
          ? // Newest row per key at the revision, walking the covering index backwards; then drop tombstones.
            `SELECT COUNT(*) AS n FROM (SELECT DISTINCT ON (kv.name) kv.deleted FROM kv WHERE kv.name >= ?${bounded ? ' AND kv.name < ?' : ''} ` +
              'AND kv.rev <= ? ORDER BY kv.name DESC, kv.rev DESC) AS latest WHERE latest.deleted = 0'
          : `SELECT COUNT(*) AS n FROM kv WHERE ${this.snapshotFilter(bounded)}`,
      );
      this.counts.set(bounded, s);
    }
    return s;
  }

  countParams(start: Buffer, end: Buffer, revision: number): unknown[] {
    const p: unknown[] = [start];
    if (end.length > 0) p.push(end);
    p.push(revision);
    if (!this.d.coveringKeyIndex) p.push(revision);
    return p;
  }

  /** Rows of a revision window in (rev, sub) order, each joined to the row it superseded via (name, prev_rev). */
  changes(limited: boolean): string {
    let s = this.changeQueries.get(limited);
    if (!s) {
      const prev = ['value', 'rev', 'sub', 'create_rev', 'prev_rev', 'version', 'deleted']
        .map((c) => `p.${c} AS p_${c}`)
        .concat(`${this.d.int64Text('p.lease')} AS p_lease`);
      s = this.d.placeholders(
        `SELECT ${this.columns('c', false)}, ${prev.join(', ')} FROM kv AS c ` +
          'LEFT JOIN kv AS p ON p.name = c.name AND p.rev = c.prev_rev ' +
          'WHERE c.rev >= ? AND c.rev <= ? ORDER BY c.rev, c.sub' +
          (limited ? ' LIMIT ?' : ''),
      );
      this.changeQueries.set(limited, s);
    }
    return s;
  }

  private snapshotFilter(bounded: boolean, tombstones = false): string {
    return (
      `kv.name >= ?${bounded ? ' AND kv.name < ?' : ''} AND kv.rev <= ?${tombstones ? '' : ' AND kv.deleted = 0'} ` +
      `AND NOT EXISTS (SELECT 1 FROM kv AS newer WHERE newer.name = kv.name AND newer.rev > kv.rev AND newer.rev <= ?${this.d.probeFence})`
    );
  }

  private columns(alias: string, keysOnly: boolean): string {
    const a = alias;
    return [
      `${a}.name`,
      keysOnly ? 'NULL AS value' : `${a}.value`,
      `${a}.rev`,
      `${a}.sub`,
      `${a}.create_rev`,
      `${a}.prev_rev`,
      `${a}.version`,
      `${this.d.int64Text(`${a}.lease`)} AS lease`,
      `${a}.deleted`,
    ].join(', ');
  }

  private insertValues(n: number): string {
    const row = `(${marks(KV_COLUMNS.length)})`;
    return `INSERT INTO kv (${KV_COLUMNS.join(', ')}) VALUES ${Array.from({ length: n }, () => row).join(', ')}`;
  }
}

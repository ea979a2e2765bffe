/**
 * What a backend needs to be the source or the target of an online migration (migration/): reads
 * that see tombstones and whole key histories, and writes that copy rows as they are (revisions, version,
 * lease kept) or drop them. The SQL backends have it (sql/movable-sql.ts), so has the etcd backend
 * (etcd/etcd-moves.ts: an etcd numbers its own history, so copied rows are kept beside the key), and so does a
 * child middleware whose own storage has it (it stores rows at the parent's revisions;
 * middleware/layer-moves.ts). A backend without it may say why in `movesRefused`.
 */
import type { Backend, KeyRow, RangeQuery } from './backend.js';

/** A backend that can be a migration source or target. */
export interface MovableBackend extends Backend {
  readonly moves: KeyMoves;
}

/** The migration operations of a backend. */
export interface KeyMoves {

  /**
   * Like `range`, but tombstones count: for each key in [start, end) the newest row at or below
   * `q.revision`, deleted or not (at most `q.limit` rows, 0 = all). `end` undefined: the single key `start`.
   */
  rangeWithTombstones(q: RangeQuery): Promise<KeyRow[]>;

  /**
   * Every stored row (tombstones and superseded versions included) of the keys from `start` on, before
   * `end` (empty: to the end of the keyspace), in key then revision order: about `limitRows` rows, but
   * always whole keys (a key with more rows than that comes alone).
   */
  history(start: Buffer, end: Buffer, limitRows: number): Promise<KeyRow[]>;

  /**
   * Stores those of `rows` it does not hold yet (same key and revision), in one write transaction (an etcd:
   * in as few as it takes; a crash between them leaves rows a second copy stores). Returns how many.
   * `rows` may be a copy repeated after the target compacted part of it: nothing compaction removed may
   * stay for good (a superseded version that outlives its successor reads again once the key's delete is
   * compacted). The SQL backends do not store it again and walk copied rows in their next compaction
   * (sql/copied-rows.ts, sql/compaction.ts); an etcd's compaction goes over every copied row each time.
   */
  copyIn(rows: KeyRow[]): Promise<number>;

  /** In one write transaction (an etcd: as few as it takes): deletes the rows of `keys` at or below `upTo`. Returns rows (an etcd: keys) deleted. */
  dropOut(keys: Buffer[], upTo: number): Promise<number>;
}

/** Why a backend cannot take part in a migration, when it can say (e.g. a child middleware whose keys span backends). */
export function movesRefused(b: Backend): string | undefined {
  return isMovable(b) ? undefined : (b as { movesRefused?: string }).movesRefused || undefined;
}

export function isMovable(b: Backend): b is MovableBackend {
  return (b as Partial<MovableBackend>).moves !== undefined;
}

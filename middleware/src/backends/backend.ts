/**
 * The narrow storage interface every backend implements (SQL dialects now; etcd and child middleware later).
 *
 * A backend is a revisioned log of key versions. It never invents revisions: the middleware's sequencer
 * (`mvcc/`) hands it every revision, evaluates etcd semantics (compares, versions, leases) and decides what
 * to write; the backend stores rows and answers snapshot queries. One write transaction runs at a time per
 * backend (the caller serialises); reads run concurrently with it and see only committed rows.
 *
 * Keys and values are bytes; every ordering is bytewise (`Buffer.compare`).
 */

/** One stored version of a key: a row of the log. */
export interface KeyRow {
  key: Buffer;
  /** Empty for tombstones and for `keysOnly` reads. */
  value: Buffer;
  /** Revision that wrote this row (etcd `mod_revision`). */
  modRevision: number;
  /** Position of this row among the rows written at `modRevision` (0, 1, ...: etcd's sub-revision). */
  sub: number;
  /** Revision at which the key was (last) created. For a tombstone: that of the deleted version. */
  createRevision: number;
  /** `modRevision` of the row this one supersedes; 0 if the key did not exist before (a create). */
  prevRevision: number;
  /** Number of puts since creation (1 on create); 0 for tombstones. */
  version: number;
  /** Lease ID as a decimal string ("0" = none). int64: never a JS number. */
  lease: string;
  /** True for a tombstone (the key was deleted at `modRevision`). */
  deleted: boolean;
}

/** A row of the log together with the row it superseded, as watch catch-up needs it. */
export interface ChangeRow extends KeyRow {
  /** The superseded version (for prev_kv); undefined on create or when compacted away. */
  prev?: KeyRow;
}

/** A snapshot read: live (non-deleted) latest versions at `revision` of keys in [start, end). */
export interface RangeQuery {
  start: Buffer;
  /**
   * Exclusive end. `undefined` reads the single key `start`. An empty buffer means "to the end of the
   * keyspace" (etcd's `range_end = "\0"` is translated to this by the caller).
   */
  end?: Buffer;
  /** Snapshot revision: for each key, the newest row with `modRevision <= revision`. */
  revision: number;
  /** At most this many rows (0 = no limit), in ascending bytewise key order. */
  limit: number;
  /** Leave `value` empty (saves transfer on large lists). */
  keysOnly?: boolean;
}

/** A lease as stored: survives restarts so expiry keeps working. */
export interface LeaseRow {
  id: string;
  /** Granted TTL in seconds. */
  ttl: number;
  /** Wall-clock expiry, ms since the epoch (moved forward by keep-alives). */
  expiresAt: number;
}

/**
 * One write transaction on a backend (etcd's `TxnWrite`, kine's `Dialect.BeginTx`): reads that see its own
 * earlier writes, writes, then exactly one of `commit()` or `rollback()`. Until it ends no other write
 * transaction of the backend starts; after it ends every method refuses.
 */
export interface WriteTxn {
  /** Newest row of `key` at any revision (a tombstone included), or undefined if never written or compacted. */
  latest(key: Buffer): Promise<KeyRow | undefined> | KeyRow | undefined;
  /**
   * Optional, for a backend reached over the network: reads the newest rows of `keys` ahead, in one round
   * trip, so the `latest` calls that follow are answered locally. A hint: the caller ignores its failure
   * (the reads that follow meet the same problem and fail only the requests that make them).
   */
  prefetch?(keys: Buffer[]): Promise<void>;
  /** Like `Backend.range`, inside the transaction. */
  range(q: RangeQuery): Promise<KeyRow[]> | KeyRow[];
  /** Appends rows (their revisions and subs are unique and above every stored revision). */
  insert(rows: KeyRow[]): Promise<void> | void;
  /** Sets a meta value (see `Backend.getMeta`). */
  setMeta(name: string, value: Buffer): Promise<void> | void;
  /**
   * Reads a meta value and holds it locked until the transaction ends, so no other writer can change it
   * meanwhile (leader fencing: a deposed leader's batch fails instead of committing).
   */
  lockMeta(name: string): Promise<Buffer | undefined> | Buffer | undefined;
  putLease(lease: LeaseRow): Promise<void> | void;
  deleteLease(id: string): Promise<void> | void;
  /**
   * Optional, for databases where every statement is a network round trip (group commit's fast path): from
   * now on inserted rows are held in memory until commit (or a read that could see them) and go out together.
   * Key length is still checked at `insert`; anything else a held row could fail on (a unique key taken, a
   * statement too large) fails with `DeferredWriteError`, certainly without committing, and without saying
   * which insert caused it: the caller rolls back and applies the same writes again without this mode.
   */
  holdWrites?(): void;
  /**
   * Optional, for a backend reached over the network: `keys` the next write transaction will read (the
   * requests queued behind this batch). A backend that can answer them with its commit keeps their newest
   * rows for its next transaction, which then needs no read-ahead round trip. A hint: it changes nothing
   * the transaction writes, and a backend may ignore it.
   */
  readAheadAfterCommit?(keys: Buffer[]): void;
  /**
   * Makes every write durable. When it fails the transaction is over and its outcome may be unknown
   * (`BackendUnavailableError`: the database may have committed before the connection broke).
   */
  commit(): Promise<void>;
  /** Discards every write. Never throws: a transaction that cannot be rolled back is abandoned (its connection dropped). */
  rollback(): Promise<void>;
}

export interface CompactResult {
  /** Rows removed by this call. */
  deleted: number;
  /** True when every row the compaction may remove (at or below the revision) is gone. */
  done: boolean;
}

export interface Backend {
  /** What the backend is, for logs and errors (credentials redacted), e.g. `sqlite:./db/state.db`. */
  readonly description: string;

  /** True when its write transactions read ahead (`WriteTxn.prefetch`): a backend reached over the network. */
  readonly readsAhead?: boolean;

  /**
   * Connects, creates the database if missing, creates or migrates the schema. Throws
   * `BackendUnavailableError` when the database cannot be reached, with a message naming it. Opening an
   * open backend does nothing; a closed one may be opened again.
   */
  open(): Promise<void>;
  close(): Promise<void>;

  /** Highest `modRevision` stored, 0 for an empty log. */
  maxRevision(): Promise<number>;

  /** Snapshot read at `q.revision` (see `RangeQuery`). */
  range(q: RangeQuery): Promise<KeyRow[]>;

  /** Number of live keys in [start, end) at `revision` (same key semantics as `RangeQuery`). */
  count(start: Buffer, end: Buffer | undefined, revision: number): Promise<number>;

  /**
   * Every row with `from <= modRevision <= to`, in (modRevision, sub) order, at most `limit` rows, each
   * with the row it superseded: the source of watch catch-up.
   */
  changes(from: number, to: number, limit: number): Promise<ChangeRow[]>;

  /**
   * Starts a write transaction, waiting while another one of this backend is open. Throws
   * `BackendUnavailableError` when the database cannot be reached.
   */
  begin(): Promise<WriteTxn>;

  /**
   * Removes every row with `from <= modRevision <= to` (and nothing else), so the keys read as before those
   * revisions were written: the undo of a write that committed here but not in every database it spanned.
   */
  revert(from: number, to: number): Promise<void>;

  /**
   * Brings the data back to a consistent state after a failure or a crash in the middle of a write (a
   * write across several databases interrupted between their commits); nothing to do for one database.
   * The store calls it on start and after a failed write batch, before allocating more revisions.
   */
  recover(): Promise<void>;

  /**
   * Removes, in batches of at most `batchSize` rows, every row that no read at a revision >= `revision` can
   * see: rows superseded by a newer row at or below `revision`, and tombstones below `revision` (a tombstone
   * at exactly `revision` stays so a watch starting there sees the delete). Stops early at `deadline` (ms
   * epoch) with `done: false`; calling again resumes.
   */
  compact(revision: number, batchSize: number, deadline: number): Promise<CompactResult>;

  /**
   * Small named values the middleware keeps with the data: `compact_revision`, the revision high-water
   * mark, the backend's identity. Undefined if never set.
   */
  getMeta(name: string): Promise<Buffer | undefined>;

  /** Every stored lease. */
  leases(): Promise<LeaseRow[]>;

  /** Live keys (latest version not deleted) that carry a lease, with their lease ID. */
  leasedKeys(): Promise<{ key: Buffer; lease: string }[]>;

  /** Bytes the data occupies on disk (etcd Status `dbSize`). */
  sizeBytes(): Promise<number>;
}

/**
 * The database cannot be reached or failed in a way that may pass (connection lost, server restarting,
 * disk full). The server maps it to gRPC `Unavailable`; the write it interrupted may or may not have
 * committed, so the sequencer resynchronises before allocating more revisions.
 */
export class BackendUnavailableError extends Error {
  /**
   * True when the database certainly did not commit the interrupted write (e.g. SQLite could not write its
   * commit for lack of space): its revisions can be handed out again, leaving no gap.
   */
  readonly rolledBack: boolean;

  constructor(message: string, options?: { cause?: unknown; rolledBack?: boolean }) {
    super(message, options);
    this.name = 'BackendUnavailableError';
    this.rolledBack = options?.rolledBack ?? false;
  }
}

/**
 * A key longer than this backend can index. Nothing of the request was stored; the server maps it to
 * gRPC `InvalidArgument` for that request alone. The message names the length and the limit.
 */
export class KeyTooLongError extends Error {
  constructor(
    readonly keyBytes: number,
    readonly limitBytes: number,
    readonly storage: string,
  ) {
    super(`key of ${keyBytes} bytes exceeds the ${limitBytes}-byte key limit of ${storage} storage`);
    this.name = 'KeyTooLongError';
  }
}

/** Runs `fn` in one write transaction of `backend` and commits it; rolls back and rethrows if `fn` throws. */
export async function inWriteTxn<T, X extends WriteTxn = WriteTxn>(backend: { begin(): Promise<X> }, fn: (tx: X) => Promise<T>): Promise<T> {
  const tx = await backend.begin();
  let result: T;
  try {
    result = await fn(tx);
  } catch (err) {
    await tx.rollback();
    throw err;
  }
  await tx.commit();
  return result;
}

/**
 * A commit failed, and what the transaction had written was taken back everywhere: nothing of it remains.
 * Unlike a plain `BackendUnavailableError` after a commit, the outcome is known, so the caller may retry.
 */
export class WriteRolledBackError extends BackendUnavailableError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WriteRolledBackError';
  }
}

/**
 * Rows held by a write transaction (`WriteTxn.holdWrites`) could not be written: nothing of the transaction
 * committed, and which request caused it is unknown.
 */
export class DeferredWriteError extends Error {
  constructor(message: string, options: { cause: unknown }) {
    super(message, options);
    this.name = 'DeferredWriteError';
  }
}

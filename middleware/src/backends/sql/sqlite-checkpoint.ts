/**
 * Keeps the SQLite write-ahead log bounded (FIELD-LESSONS.md: a peer's WAL reached 20 GB under lease churn).
 *
 * SQLite's own checkpoint runs on the writer after a commit once the WAL holds WAL_AUTOCHECKPOINT_PAGES: it
 * is PASSIVE, so it copies only the frames no reader still needs, and the WAL is reused from its start only
 * once a checkpoint copied all of it. The read worker runs long ranges, counts and watch catch-up back to
 * back on its own connection, each in a snapshot older than the commits made meanwhile: the WAL is then
 * reset only when a commit happens to fall between two of its reads, and grows at the write rate until one
 * does (53-199 MiB in 30-40 s of the churn in test/backends/sqlite-wal.test.ts). The main thread's reads
 * cannot pin it: they are synchronous, so none is open while the writer commits. Without a size limit the
 * file never shrinks afterwards either.
 *
 * So the writer cuts the file back to JOURNAL_SIZE_LIMIT_BYTES whenever the WAL is reset, and when the file
 * passes FORCE_CHECKPOINT_BYTES after a commit the backend runs a TRUNCATE checkpoint itself, once no read
 * of ours holds a snapshot. A PASSIVE one of ours would add nothing: SQLite's is PASSIVE and fails for the
 * same reason. The checkpoint never waits for a lock: better-sqlite3 is synchronous, and a wait would hold
 * the event loop for up to the busy timeout (5 s); with it at 0 a checkpoint that would have to wait
 * (another process using the file) gives up and is tried again later. A checkpoint copies committed frames
 * into the database and syncs it before the WAL is reset or truncated: it never loses or reorders a commit.
 */
import type Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import type { Logger } from '../../log.js';

const MiB = 1024 * 1024;

/** SQLite's default (about 4 MiB of 4 KiB pages), set explicitly: the WAL of a healthy database stays near it. */
const WAL_AUTOCHECKPOINT_PAGES = 1000;

/**
 * Size the writer cuts the WAL file back to when the WAL is reset (`journal_size_limit`). About twice what a
 * healthy WAL reaches (an automatic checkpoint's worth and a large group commit), so normal operation does
 * not cut and regrow it; the space a burst took is given back.
 */
const JOURNAL_SIZE_LIMIT_BYTES = 8 * MiB;

/**
 * WAL file size above which the backend checkpoints itself: four automatic checkpoints in a row did not
 * reset the WAL, so readers pin it. A healthy database does not get there (one large transaction does, and
 * costs one extra checkpoint). The WAL grows on while the reads already queued on the worker finish, by up
 * to as much again under heavy churn (sqlite-wal.test.ts: 22-28 MiB at most; 32-44 MiB with this at
 * 24 MiB), so it stays in tens of MiB. A forced checkpoint holds the event loop for tens of milliseconds
 * (what SQLite's own could not copy, two fsyncs); under sustained churn and reads, one per 16 MiB written.
 */
const FORCE_CHECKPOINT_BYTES = 16 * MiB;

/** Wait after a checkpoint that could not finish (another process held the file) before trying again. */
const RETRY_MS = 1000;

/** The pragmas of the writer connection that bound its WAL (see above). */
export function walPragmas(db: Database.Database): void {
  db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
  db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}`);
}

/** What `PRAGMA wal_checkpoint` answers. */
export interface CheckpointRow {
  busy: number;
  log: number;
  checkpointed: number;
}

/**
 * A TRUNCATE checkpoint on `db` (the writer, outside a transaction) that never waits: if another connection
 * holds a snapshot or the write lock it copies what it can and reports busy.
 */
function truncateCheckpoint(db: Database.Database): CheckpointRow {
  const timeout = Number(db.pragma('busy_timeout', { simple: true }));
  db.pragma('busy_timeout = 0');
  try {
    return (db.pragma('wal_checkpoint(TRUNCATE)') as CheckpointRow[])[0]!;
  } finally {
    db.pragma(`busy_timeout = ${timeout}`);
  }
}

export interface CheckpointHost {
  /** The database file (its WAL is `${file}-wal`). */
  file: string;
  description: string;
  /**
   * Runs `fn` on the writer once no read of this backend holds a snapshot, keeping new reads waiting until it
   * returns; undefined (fn not run) if the backend closed or the writer is inside a transaction.
   */
  whenQuiet(fn: (writer: Database.Database) => CheckpointRow): Promise<CheckpointRow | undefined>;
  log: Logger;
}

/** Decides, after each commit, whether the backend must checkpoint the WAL itself, and runs that checkpoint. */
export class WalCheckpointer {
  private running?: Promise<void>;
  private notBefore = 0;
  /** Another process kept the last checkpoint from finishing: warned once until one succeeds. */
  private warned = false;

  constructor(private readonly host: CheckpointHost) {}

  /** After a commit on the writer: starts a checkpoint if the WAL file passed FORCE_CHECKPOINT_BYTES. Cheap (one stat). */
  afterCommit(): void {
    if (this.running || Date.now() < this.notBefore) return;
    let bytes: number;
    try {
      bytes = walBytes(this.host.file);
    } catch (err) {
      // the commit succeeded: a file we cannot stat only postpones the check
      this.notBefore = Date.now() + RETRY_MS;
      this.host.log.warn('cannot read the size of the SQLite write-ahead log', { backend: this.host.description, file: `${this.host.file}-wal`, error: err });
      return;
    }
    if (bytes <= FORCE_CHECKPOINT_BYTES) return;
    this.running = this.checkpoint(bytes).finally(() => (this.running = undefined));
  }

  /** Resolves once a checkpoint in progress has ended (the backend waits for it on close). */
  async settled(): Promise<void> {
    await this.running;
  }

  private async checkpoint(bytes: number): Promise<void> {
    const { host } = this;
    try {
      let ms = 0;
      const row = await host.whenQuiet((db) => {
        const started = performance.now();
        const r = truncateCheckpoint(db);
        ms = performance.now() - started;
        return r;
      });
      // closed, or the writer was inside a transaction: its commit tries again
      if (!row) return;
      if (row.busy === 0) {
        this.warned = false;
        host.log.debug('checkpointed the write-ahead log', { backend: host.description, walBytes: bytes, frames: row.log, ms: Math.round(ms) });
        return;
      }
      this.notBefore = Date.now() + RETRY_MS;
      if (!this.warned) {
        this.warned = true;
        host.log.warn('cannot checkpoint the SQLite write-ahead log: another process is reading or writing the database; stop it (a sqlite3 shell, a backup tool) so the log can be reset; retrying every second', {
          backend: host.description,
          file: `${host.file}-wal`,
          walMiB: Math.round(bytes / MiB),
        });
      }
    } catch (err) {
      this.notBefore = Date.now() + RETRY_MS;
      host.log.warn('checkpoint of the SQLite write-ahead log failed; retrying after the next commit', { backend: host.description, file: `${host.file}-wal`, error: err });
    }
  }
}

/** Size of the WAL file, 0 if there is none (reset and truncated, or not created yet). */
function walBytes(file: string): number {
  return statSync(`${file}-wal`, { throwIfNoEntry: false })?.size ?? 0;
}

/**
 * The end of a SQL write transaction, the same for SQLite and the database servers: usable until it commits
 * or rolls back, then every method refuses; ending releases the write lock and stops the write timer, once.
 */
export class TxnLifecycle {
  private active = true;

  constructor(
    private readonly release: () => void,
    private readonly stopTimer: () => void,
  ) {}

  get ended(): boolean {
    return !this.active;
  }

  /** Throws once the transaction has ended. */
  check(): void {
    if (!this.active) throw new Error('write transaction already ended: begin() a new one');
  }

  /** Ends the transaction (a second call does nothing): releases the write lock and stops the write timer. */
  end(): void {
    if (!this.active) return;
    this.active = false;
    this.stopTimer();
    this.release();
  }
}

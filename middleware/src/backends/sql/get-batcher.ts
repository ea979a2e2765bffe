/**
 * Single-key reads (etcd Range of one key: most of what kube-apiserver asks) on a database server, where each
 * query is a network round trip and a wake-up of the server: at most `maxInFlight` queries run at once, and
 * gets that arrive meanwhile wait and go out together as one statement when one returns (as group commit
 * does for writes). Alone, a get goes out at once: nothing waits unless the database is already busy.
 */

export interface Get<R> {
  key: Buffer;
  revision: number;
  resolve: (row: R) => void;
  reject: (err: unknown) => void;
}

/** Most gets in one statement. */
const MAX_BATCH = 64;

export class GetBatcher<R> {
  private inFlight = 0;
  private waiting: Get<R>[] = [];

  constructor(
    private readonly maxInFlight: number,
    /** Reads several gets in one statement, answering in their order. */
    private readonly readMany: (gets: { key: Buffer; revision: number }[]) => Promise<R[]>,
  ) {}

  get(key: Buffer, revision: number): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({ key, revision, resolve, reject });
      this.drain();
    });
  }

  private drain(): void {
    while (this.inFlight < this.maxInFlight && this.waiting.length > 0) {
      const batch = this.waiting.length <= MAX_BATCH ? this.waiting : this.waiting.slice(0, MAX_BATCH);
      this.waiting = this.waiting.length <= MAX_BATCH ? [] : this.waiting.slice(MAX_BATCH);
      this.inFlight++;
      this.readMany(batch).then(
        (rows) => batch.forEach((g, i) => g.resolve(rows[i] as R)),
        (err) => batch.forEach((g) => g.reject(err)),
      ).finally(() => {
        this.inFlight--;
        this.drain();
      });
    }
  }
}

/** A FIFO async mutex: serialises the write transaction and compaction batches on one connection. */
export class Lock {
  private tail: Promise<unknown> = Promise.resolve();
  /** Times the lock was taken (by `run` or `acquire`): a holder can tell later whether anyone held it since. */
  taken = 0;

  run<T>(fn: () => Promise<T> | T): Promise<T> {
    const result = this.tail.then(() => {
      this.taken++;
      return fn();
    });
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  /** Waits for the lock and holds it until the returned function is called (once). */
  acquire(): Promise<() => void> {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const acquired = this.tail.then(() => {
      this.taken++;
      let done = false;
      return () => {
        if (done) return;
        done = true;
        release();
      };
    });
    this.tail = acquired.then(() => held);
    return acquired;
  }
}

/**
 * Everything the bench starts (servers, temp dirs, databases, gRPC channels) registers its undo here, so
 * one call tears it all down in reverse order, on success, on failure and on Ctrl-C alike.
 */
type Undo = { what: string; fn: () => Promise<void> | void };

const stack: Undo[] = [];

/** Registers `fn` to run at cleanup; returns a function that runs it early (and only once). */
export function onCleanup(what: string, fn: () => Promise<void> | void): () => Promise<void> {
  const entry: Undo = { what, fn };
  stack.push(entry);
  return async () => {
    const i = stack.indexOf(entry);
    if (i < 0) return;
    stack.splice(i, 1);
    await fn();
  };
}

/** Runs every registered undo, newest first; one failing never skips the rest. */
export async function cleanupAll(): Promise<void> {
  while (stack.length) {
    const { what, fn } = stack.pop()!;
    try {
      await fn();
    } catch (err) {
      process.stderr.write(`bench cleanup: ${what} failed: ${(err as Error).message}\n`);
    }
  }
}

/** Ctrl-C / SIGTERM: clean up, then exit non-zero (a second signal exits at once). */
export function cleanupOnSignals(): void {
  const handler = (signal: NodeJS.Signals) => {
    process.stderr.write(`\nbench: ${signal}, cleaning up...\n`);
    process.once(signal, () => process.exit(130));
    void cleanupAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}

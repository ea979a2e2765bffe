/**
 * Reads and watches one key of the store from inside the process, the way an etcd client would but without
 * the network: the `secret://` topology source reads the topology Secret this way (docs/architecture.md, "The topology lifecycle").
 */
import { WatchEvent } from './watch-event.js';
import type { Store } from './store.js';
import { Watcher, type WatchSink } from './watch-hub.js';

let nextId = 1;

/** A watch sink that hands events to a callback; it never congests, so it is always live. */
class CallbackSink implements WatchSink {
  closed = false;

  constructor(
    private readonly onChange: (value: Buffer | undefined, revision: number) => void,
    private readonly onError: (err: Error) => void,
  ) {}

  deliver(_w: Watcher, events: WatchEvent[]): boolean {
    for (const e of events) if (!this.closed) this.onChange(e.type === 'Put' ? e.kv.value : undefined, e.revision);
    return true;
  }

  compacted(_w: Watcher, compactRevision: number): void {
    this.closed = true;
    this.onError(new Error(`the watch fell behind compaction (revision ${compactRevision})`));
  }

  drained(): Promise<void> {
    return Promise.resolve();
  }

  synced(): void {}

  progress(): void {}
}

export class StoreKeyReader {
  constructor(private readonly store: Store) {}

  /** The value of `key` now (undefined if absent) and the revision it was read at. */
  async get(key: Buffer): Promise<{ value: Buffer | undefined; revision: number }> {
    const res = await this.store.range({ key });
    return { value: res.kvs[0]?.value, revision: res.header.revision };
  }

  /** Calls `onChange` for every change of `key` after `afterRevision`, in order; returns a function that cancels. */
  watch(
    key: Buffer,
    afterRevision: number,
    onChange: (value: Buffer | undefined, revision: number) => void,
    onError: (err: Error) => void,
  ): () => void {
    const sink = new CallbackSink(onChange, onError);
    const options = { prevKv: false, noPut: false, noDelete: false, progressNotify: false };
    const w = new Watcher(`internal-${nextId++}`, Buffer.from(key), undefined, options, afterRevision + 1, sink);
    this.store.hub.add(w);
    return () => {
      sink.closed = true;
      this.store.hub.remove(w);
    };
  }
}

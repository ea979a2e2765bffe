/**
 * One Watch stream, recorded: every response is kept in arrival order so tests can check ordering across
 * watchers, and every wait is bounded and names what it waited for.
 */
import type grpc from '@grpc/grpc-js';
import type * as T from './etcd-types.js';

const DEFAULT_WAIT_MS = 10_000;

export class WatchStream {
  /** Every response received, in arrival order. */
  readonly responses: T.WatchResponse[] = [];
  private createsSent = 0;
  private failure: Error | undefined;
  private closed = false;
  private readonly wakers = new Set<() => void>();

  constructor(private readonly call: grpc.ClientDuplexStream<T.WatchRequest, T.WatchResponse>) {
    call.on('data', (res: T.WatchResponse) => {
      this.responses.push(res);
      this.wake();
    });
    call.on('error', (err: Error) => {
      if (!this.closed) this.failure = err;
      this.wake();
    });
    call.on('end', () => {
      if (!this.closed && !this.failure) this.failure = new Error('watch stream ended by the server');
      this.wake();
    });
  }

  send(req: T.WatchRequest): void {
    this.call.write(req);
  }

  /** Sends a create request without waiting (to pipeline several creates). */
  sendCreate(req: T.WatchCreateRequest): number {
    this.send({ create_request: req });
    return this.createsSent++;
  }

  /** Creates a watch and waits for its `created` response (they answer in request order). */
  async create(req: T.WatchCreateRequest, timeoutMs = DEFAULT_WAIT_MS): Promise<T.WatchResponse> {
    return this.createdResponse(this.sendCreate(req), timeoutMs);
  }

  /** The `index`-th created response on this stream (0-based). */
  createdResponse(index: number, timeoutMs = DEFAULT_WAIT_MS): Promise<T.WatchResponse> {
    return this.waitFor(`created response #${index}`, (rs) => rs.filter((r) => r.created)[index], timeoutMs);
  }

  /** Cancels a watch and waits for its `canceled` response. */
  async cancel(watchId: T.Int64, timeoutMs = DEFAULT_WAIT_MS): Promise<T.WatchResponse> {
    this.send({ cancel_request: { watch_id: watchId } });
    return this.waitFor(`cancel of watch ${watchId}`, (rs) => rs.find((r) => r.canceled && r.watch_id === watchId), timeoutMs);
  }

  /** Stops reading responses (the server sees HTTP/2 flow control push back): a slow client. */
  pause(): void {
    this.call.pause();
  }

  resume(): void {
    this.call.resume();
  }

  requestProgress(): void {
    this.send({ progress_request: {} });
  }

  /** Events of one watch, flattened, in arrival order. */
  eventsOf(watchId: T.Int64): T.Event[] {
    return this.responses.filter((r) => r.watch_id === watchId).flatMap((r) => r.events);
  }

  /** Waits until the watch has delivered at least `count` events; returns all of them. */
  waitForEvents(watchId: T.Int64, count: number, timeoutMs = DEFAULT_WAIT_MS): Promise<T.Event[]> {
    return this.waitFor(`${count} events on watch ${watchId}`, () => {
      const events = this.eventsOf(watchId);
      return events.length >= count ? events : undefined;
    }, timeoutMs);
  }

  /** Waits until `pick(responses)` returns something; fails on timeout or if the stream breaks. */
  waitFor<R>(what: string, pick: (responses: T.WatchResponse[]) => R | undefined, timeoutMs = DEFAULT_WAIT_MS): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const check = (): boolean => {
        const found = pick(this.responses);
        if (found !== undefined) {
          finish();
          resolve(found);
          return true;
        }
        if (this.failure) {
          finish();
          reject(new Error(`watch stream failed while waiting for ${what}: ${this.failure.message}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${this.describe()}`));
      }, timeoutMs);
      const waker = () => void check();
      const finish = () => {
        clearTimeout(timer);
        this.wakers.delete(waker);
      };
      if (!check()) this.wakers.add(waker);
    });
  }

  /** A compact summary of what arrived, for failure messages. */
  describe(): string {
    const summary = this.responses.map((r) => ({
      id: r.watch_id,
      rev: r.header?.revision,
      ...(r.created ? { created: true } : {}),
      ...(r.canceled ? { canceled: true, compact: r.compact_revision, reason: r.cancel_reason } : {}),
      events: r.events.map((e) => `${e.type}:${e.kv.key.toString()}@${e.kv.mod_revision}`),
    }));
    return JSON.stringify(summary).slice(0, 4000);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.call.end();
    this.call.cancel();
  }

  private wake(): void {
    for (const w of [...this.wakers]) w();
  }
}

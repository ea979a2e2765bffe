/** One LeaseKeepAlive stream: each keepAlive() sends an ID and waits (bounded) for the next response. */
import type grpc from '@grpc/grpc-js';
import type * as T from './etcd-types.js';

export class KeepAliveStream {
  private readonly received: T.LeaseKeepAliveResponse[] = [];
  private readonly waiting: { resolve(r: T.LeaseKeepAliveResponse): void; reject(e: Error): void }[] = [];
  private failure: Error | undefined;
  private closed = false;

  constructor(private readonly call: grpc.ClientDuplexStream<{ ID: T.Int64In }, T.LeaseKeepAliveResponse>) {
    call.on('data', (res: T.LeaseKeepAliveResponse) => {
      const w = this.waiting.shift();
      if (w) w.resolve(res);
      else this.received.push(res);
    });
    const fail = (err: Error) => {
      if (this.closed) return;
      this.failure = err;
      for (const w of this.waiting.splice(0)) w.reject(err);
    };
    call.on('error', fail);
    call.on('end', () => fail(new Error('keep-alive stream ended by the server')));
  }

  keepAlive(ID: T.Int64In, timeoutMs = 10_000): Promise<T.LeaseKeepAliveResponse> {
    if (this.failure) return Promise.reject(this.failure);
    this.call.write({ ID });
    const ready = this.received.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const entry = {
        resolve: (r: T.LeaseKeepAliveResponse) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(entry), 1);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for a keep-alive response for lease ${ID}`));
      }, timeoutMs);
      this.waiting.push(entry);
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.call.end();
    this.call.cancel();
  }
}

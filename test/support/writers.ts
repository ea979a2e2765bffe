/**
 * Concurrent writers over gRPC, as API clients: each lane owns its keys and cycles over them with puts (a
 * value no other put has) and, every few writes, a delete, each on its own connection. Every attempt is
 * recorded (write-model.ts), and each acknowledged write is read back at once: no one else writes the key,
 * so the read must show exactly that write (`readErrors` lists the reads that did not). Bounded in count and
 * time. A failed call (the server was killed) leaves its attempt unacknowledged; the lane reconnects and
 * goes on once the server is back.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { b } from './bytes.js';
import { EtcdClient } from './grpc.js';
import type { Attempt } from './write-model.js';

export interface WritersOptions {
  /** host:port of the server. */
  address: string;
  /** Keys of each lane (a key in one lane only, so each key's writes are in order). */
  lanes: string[][];
  /** Stop after this many attempts in all. */
  maxWrites: number;
  /** Stop after this long whatever happens. */
  maxMs: number;
  /** Every n-th write of a lane is a delete (default 5). */
  deleteEvery?: number;
  /** Pause between a lane's writes (default none), so a bounded count spans a longer time. */
  pauseMs?: number;
}

export class Writers {
  readonly attempts: Attempt[] = [];
  /** The first few failures, for messages. */
  readonly errors: string[] = [];
  /** Reads right after an acknowledged write that did not show it (stale or lost: always a bug). */
  readonly readErrors: string[] = [];
  private stopped = false;
  private running?: Promise<void>;

  constructor(private readonly opts: WritersOptions) {}

  start(): this {
    const deadline = Date.now() + this.opts.maxMs;
    this.running = Promise.all(this.opts.lanes.map((keys, lane) => this.lane(lane, keys, deadline))).then(() => undefined);
    return this;
  }

  /** Stops every lane after its current write and waits for them. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }

  /** Resolves when the lanes have stopped by themselves (count or time bound). */
  finished(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  get acked(): Attempt[] {
    return this.attempts.filter((a) => a.acked);
  }

  private async lane(lane: number, keys: string[], deadline: number): Promise<void> {
    const every = this.opts.deleteEvery ?? 5;
    let client = new EtcdClient(this.opts.address);
    try {
      for (let n = 0; !this.stopped && this.attempts.length < this.opts.maxWrites && Date.now() < deadline; n++) {
        const key = keys[n % keys.length]!;
        const attempt: Attempt = n % every === every - 1 ? { key, op: 'delete', acked: false } : { key, op: 'put', value: `lane${lane}-${n}`, acked: false };
        this.attempts.push(attempt);
        try {
          if (attempt.op === 'put') {
            const res = await client.put({ key: b(key), value: b(attempt.value!) });
            attempt.revision = Number(res.header.revision);
          } else {
            const res = await client.deleteRange({ key: b(key) });
            if (Number(res.deleted) > 0) attempt.revision = Number(res.header.revision);
          }
          attempt.acked = true;
          attempt.ackedAt = Date.now();
          const read = (await client.range({ key: b(key) })).kvs[0];
          const got = read ? `${read.value.toString()} at ${read.mod_revision}` : 'nothing';
          const want = attempt.op === 'put' ? `${attempt.value} at ${attempt.revision}` : 'nothing';
          // a delete that found nothing leaves the key absent too
          if (got !== want) this.readErrors.push(`${key}: read ${got} right after its ${attempt.op} (${want})`);
        } catch (err) {
          if (this.errors.length < 5) this.errors.push(`${attempt.op} ${key}: ${(err as Error).message}`);
          // the server may be down (killed): a fresh connection once it is back
          client.close();
          await sleep(200);
          client = new EtcdClient(this.opts.address);
        }
        if (this.opts.pauseMs) await sleep(this.opts.pauseMs);
      }
    } finally {
      client.close();
    }
  }
}

/**
 * Concurrent writers over gRPC, as API clients: each lane owns its keys and cycles over them, every other
 * write a plain Put/DeleteRange and every other one the Txn kube-apiserver sends (create if absent, update or
 * delete if unchanged since the revision the lane last saw), with a delete every few writes, each lane on
 * its own connection. Every attempt is recorded (write-model.ts). No one else writes a lane's keys, so the
 * server must answer each lane consistently: a key reads back exactly as the lane's last write left it, and a
 * Txn conditioned on that revision succeeds; `anomalies` lists every answer that did not. Bounded in count
 * and time. A failed call (the server was killed) leaves its attempt unacknowledged; the lane reconnects,
 * reads the key again and goes on once the server is back.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { b } from './bytes.js';
import { EtcdClient } from './grpc.js';
import { kubeCreate, kubeDelete, kubeUpdate } from './kube-txn.js';
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
  /** Answers that contradict the lane's own writes (a stale read, a Txn refused on the revision just written): always a bug. */
  readonly anomalies: string[] = [];
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

  get acked(): Attempt[] {
    return this.attempts.filter((a) => a.acked);
  }

  private async lane(lane: number, keys: string[], deadline: number): Promise<void> {
    const every = this.opts.deleteEvery ?? 5;
    let client = new EtcdClient(this.opts.address);
    /** Mod revision of each key as the lane last left it (0: absent); unknown after a failed call. */
    const mod = new Map<string, number>();
    try {
      for (let n = 0; !this.stopped && this.attempts.length < this.opts.maxWrites && Date.now() < deadline; n++) {
        const key = keys[n % keys.length]!;
        const kube = n % 2 === 1;
        try {
          if (kube && !mod.has(key)) mod.set(key, Number((await client.range({ key: b(key) })).kvs[0]?.mod_revision ?? 0));
        } catch (err) {
          await this.failed(`range ${key}`, err);
          client = this.reconnect(client);
          continue;
        }
        const del = n % every === every - 1 && (!kube || mod.get(key)! > 0);
        const attempt: Attempt = del ? { key, op: 'delete', acked: false } : { key, op: 'put', value: `lane${lane}-${n}`, acked: false };
        this.attempts.push(attempt);
        try {
          if (!kube) {
            if (attempt.op === 'put') attempt.revision = Number((await client.put({ key: b(key), value: b(attempt.value!) })).header.revision);
            else {
              const res = await client.deleteRange({ key: b(key) });
              if (Number(res.deleted) > 0) attempt.revision = Number(res.header.revision);
            }
          } else {
            const known = mod.get(key)!;
            const req = attempt.op === 'delete' ? kubeDelete(b(key), known) : known === 0 ? kubeCreate(b(key), b(attempt.value!)) : kubeUpdate(b(key), known, b(attempt.value!));
            const res = await client.txn(req);
            if (!res.succeeded) {
              const current = res.responses[0]?.response_range?.kvs[0];
              this.anomalies.push(`${key}: kube ${attempt.op === 'delete' ? 'delete' : known === 0 ? 'create' : 'update'} conditioned on mod ${known} (the lane's last write) was refused; the server has ${current ? `mod ${current.mod_revision}` : 'nothing'}`);
              attempt.acked = true; // answered, and nothing was written
              mod.delete(key);
              continue;
            }
            attempt.revision = Number(res.header.revision);
          }
          attempt.acked = true;
          attempt.ackedAt = Date.now();
          mod.set(key, attempt.op === 'put' ? attempt.revision! : 0);
          const read = (await client.range({ key: b(key) })).kvs[0];
          const got = read ? `${read.value.toString()} at ${read.mod_revision}` : 'nothing';
          const want = attempt.op === 'put' ? `${attempt.value} at ${attempt.revision}` : 'nothing';
          // a delete that found nothing leaves the key absent too
          if (got !== want) this.anomalies.push(`${key}: read ${got} right after its ${attempt.op} (${want})`);
        } catch (err) {
          mod.delete(key);
          await this.failed(`${attempt.op} ${key}`, err);
          client = this.reconnect(client);
        }
        if (this.opts.pauseMs) await sleep(this.opts.pauseMs);
      }
    } finally {
      client.close();
    }
  }

  private async failed(what: string, err: unknown): Promise<void> {
    if (this.errors.length < 5) this.errors.push(`${what}: ${(err as Error).message}`);
    // the server may be down (killed): a fresh connection once it is back
    await sleep(200);
  }

  private reconnect(client: EtcdClient): EtcdClient {
    client.close();
    return new EtcdClient(this.opts.address);
  }
}

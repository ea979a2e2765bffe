/**
 * Range, count and changes (watch catch-up) reads of the SQLite backend on a worker thread. better-sqlite3 is synchronous, so a read
 * on the main thread stops every other request until it returns: a 10,000-key list takes tens of
 * milliseconds, a count of a large range as long. On its own thread and connection it runs while the event
 * loop keeps serving gRPC. Single-key reads and small pages stay on the main thread (sqlite.ts decides),
 * where they cost less than the hop. The worker is started with the backend, restarted on first use after
 * it dies, and stopped with the backend; its connection sees every committed write, as the main reader does.
 */
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { BackendUnavailableError, type RangeQuery } from '../backend.js';
import type { DbRow } from './rows.js';
import type { PackedRow } from './sqlite-pages.js';

/** What the worker is started with. */
export interface WorkerInit {
  file: string;
  description: string;
}

/** Keys arrive in the worker as Uint8Arrays (structured clone does not keep Buffer). */
export type ReadRequest =
  | { id: number; op: 'range'; query: Omit<RangeQuery, 'start' | 'end'> & { start: Uint8Array; end: Uint8Array } }
  | { id: number; op: 'count'; start: Uint8Array; end: Uint8Array; revision: number }
  | { id: number; op: 'changes'; from: number; to: number; limit: number };

/** An error as it crosses the thread boundary (its SQLite code decides whether it may pass). */
export interface WorkerError {
  message: string;
  code?: string;
  name?: string;
}

export type ReadReply =
  | { id: number; chunks: PackedRow[] }
  | { id: number; n: number }
  | { id: number; rows: DbRow[] }
  | { id: number; error: WorkerError };

type Startup = { ready: true } | { ready: false; error: WorkerError };

interface Pending {
  resolve: (reply: ReadReply) => void;
  reject: (err: unknown) => void;
}

/** One started worker and the reads sent to it (a restarted worker is a new one). */
interface Running {
  worker: Worker;
  pending: Map<number, Pending>;
  /** Called once no read is pending (see whenIdle). */
  idle: (() => void)[];
}

// The worker's source sits next to this file: .js when compiled, .ts when run from source under tsx.
const HERE = fileURLToPath(import.meta.url);
const WORKER_FILE = path.join(path.dirname(HERE), `sqlite-read-worker${path.extname(HERE)}`);

/** Starts the worker; from source, through tsx's API, since a worker's entry does not go through --import hooks. */
function newWorker(init: WorkerInit, options: WorkerOptions): Worker {
  if (!WORKER_FILE.endsWith('.ts')) return new Worker(WORKER_FILE, { ...options, workerData: init });
  const boot = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(pathToFileURL(WORKER_FILE).href)}); })`;
  return new Worker(boot, { ...options, eval: true, workerData: init });
}

/** A worker holds little JavaScript: a small young generation keeps its share of RSS small. */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 4 };

/** Structured clone turns Buffers into plain Uint8Arrays: views of the same bytes, as Buffers again. */
export const asBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/**
 * The bytes of `b` in a buffer of their own. Structured clone copies a view's whole ArrayBuffer, and keys
 * from requests are views of much larger slabs (gRPC frames, Buffer's pool).
 */
const exact = (b: Buffer): Uint8Array => new Uint8Array(b);

/** Rebuilds a worker's error with its code, so the caller can classify it as it would a local one. */
function workerError(e: WorkerError): Error {
  const err = new Error(e.message) as Error & { code?: string };
  if (e.code) err.code = e.code;
  if (e.name) err.name = e.name;
  return err;
}

export class SqliteReadThread {
  private current?: Running;
  private starting?: Promise<Running>;
  /** Set while whenIdle runs: reads wait for it before they are sent. */
  private gate?: Promise<void>;
  private nextId = 1;
  private closed = false;

  constructor(private readonly init: WorkerInit) {}

  /** Starts the worker and waits until its connection is open (its failure to open is thrown). */
  async start(): Promise<void> {
    this.closed = false;
    await this.running();
  }

  /** The packed chunks of range `q` (q.end defined). */
  async range(q: RangeQuery): Promise<PackedRow[]> {
    const query = { ...q, start: exact(q.start), end: exact(q.end!) };
    const reply = (await this.call({ id: 0, op: 'range', query })) as { chunks: PackedRow[] };
    for (const chunk of reply.chunks) {
      chunk.bytes = chunk.bytes && asBuffer(chunk.bytes);
      chunk.last = chunk.last && asBuffer(chunk.last);
    }
    return reply.chunks;
  }

  /** Live keys of [start, end) at `revision` (end empty: to the end of the keyspace). */
  async count(start: Buffer, end: Buffer, revision: number): Promise<number> {
    return ((await this.call({ id: 0, op: 'count', start: exact(start), end: exact(end), revision })) as { n: number }).n;
  }

  /** `kv` rows of revisions [from, to] with the rows they superseded (`Statements.changes`), as selected. */
  async changes(from: number, to: number, limit: number): Promise<DbRow[]> {
    return ((await this.call({ id: 0, op: 'changes', from, to, limit })) as { rows: DbRow[] }).rows;
  }

  /**
   * Runs `fn` once the worker has answered every read sent to it, and sends no new read until `fn` has
   * returned: its connection then holds no snapshot (a checkpoint needs that to reset the WAL). Reads queue
   * on the worker in order anyway, so a read held here waits little longer than it would have there.
   */
  async whenIdle<T>(fn: () => Promise<T> | T): Promise<T> {
    while (this.gate) await this.gate;
    let open!: () => void;
    this.gate = new Promise<void>((resolve) => (open = resolve));
    try {
      const running = this.current;
      if (running && running.pending.size > 0) await new Promise<void>((resolve) => running.idle.push(resolve));
      return await fn();
    } finally {
      this.gate = undefined;
      open();
    }
  }

  /** Stops the worker; reads still waiting for it fail as unavailable. */
  async close(): Promise<void> {
    this.closed = true;
    const running = this.current ?? (await this.starting?.catch(() => undefined));
    this.current = this.starting = undefined;
    if (!running) return;
    fail(running, `${this.init.description}: the backend was closed while the read was running`);
    await running.worker.terminate();
  }

  private async call(req: ReadRequest): Promise<ReadReply> {
    let running = await this.running();
    // held while whenIdle runs; from the last check to postMessage nothing yields
    while (this.gate) {
      await this.gate;
      running = await this.running();
    }
    // closed or restarted while this read waited for the worker to start
    if (running !== this.current) throw new BackendUnavailableError(`${this.init.description}: the backend was closed while the read was starting`);
    const id = this.nextId++;
    const reply = await new Promise<ReadReply>((resolve, reject) => {
      if (running.pending.size === 0) running.worker.ref();
      running.pending.set(id, { resolve, reject });
      running.worker.postMessage({ ...req, id });
    });
    if ('error' in reply) throw workerError(reply.error);
    return reply;
  }

  private running(): Promise<Running> {
    if (this.closed) return Promise.reject(new Error(`${this.init.description}: the backend is not open (call open() first, and not after close())`));
    if (this.current) return Promise.resolve(this.current);
    return (this.starting ??= this.spawn().finally(() => (this.starting = undefined)));
  }

  private spawn(): Promise<Running> {
    return new Promise<Running>((resolve, reject) => {
      const running: Running = { worker: newWorker(this.init, { resourceLimits: WORKER_LIMITS }), pending: new Map(), idle: [] };
      const { worker, pending } = running;
      let started = false;
      worker.on('message', (m: Startup | ReadReply) => {
        if (!started) {
          started = true;
          if ('ready' in m && m.ready) {
            // an idle worker does not keep the process alive; it is ref'd while reads wait for it
            worker.unref();
            this.current = running;
            resolve(running);
          } else {
            reject(workerError((m as { error: WorkerError }).error));
            void worker.terminate();
          }
          return;
        }
        const reply = m as ReadReply;
        const p = pending.get(reply.id);
        pending.delete(reply.id);
        if (pending.size === 0) {
          worker.unref();
          wake(running);
        }
        p?.resolve(reply);
      });
      worker.on('error', (err) => {
        if (!started) {
          started = true;
          reject(err);
        }
      });
      worker.on('exit', (code) => {
        if (this.current === running) this.current = undefined;
        if (!started) {
          started = true;
          reject(new Error(`${this.init.description}: the SQLite read worker exited with code ${code} before opening the database`));
        }
        fail(running, `${this.init.description}: the SQLite read worker stopped (exit code ${code}); it restarts on the next read`);
      });
    });
  }
}

function fail(running: Running, message: string): void {
  for (const p of running.pending.values()) p.reject(new BackendUnavailableError(message));
  running.pending.clear();
  wake(running);
}

/** No read is pending on `running` any more: wakes whoever waits for that. */
function wake(running: Running): void {
  for (const resolve of running.idle.splice(0)) resolve();
}

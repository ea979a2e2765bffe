/**
 * The SQLite read worker's thread (see sqlite-read-thread.ts): one query-only connection that answers
 * range, count and changes requests, so a large list or a watch catch-up runs beside the event loop
 * instead of blocking it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { connectSqlite, StatementCache } from './sqlite-connection.js';
import { sqliteDialect } from './sqlite-dialect.js';
import { PackedRanges } from './sqlite-pages.js';
import { Statements } from './statements.js';
import { asBuffer, type ReadReply, type ReadRequest, type WorkerError, type WorkerInit } from './sqlite-read-thread.js';
import type { DbRow } from './rows.js';

const port = parentPort!;
const init = workerData as WorkerInit;
const st = new Statements(sqliteDialect);
const pages = new PackedRanges(st);

function errorOf(err: unknown): WorkerError {
  const e = err as { message?: unknown; code?: unknown; name?: unknown };
  return {
    message: typeof e?.message === 'string' ? e.message : String(err),
    ...(typeof e?.code === 'string' ? { code: e.code } : {}),
    ...(typeof e?.name === 'string' ? { name: e.name } : {}),
  };
}

function answer(c: StatementCache, req: ReadRequest): void {
  let reply: ReadReply;
  const transfer: ArrayBuffer[] = [];
  try {
    if (req.op === 'range') {
      const q = { ...req.query, start: asBuffer(req.query.start), end: asBuffer(req.query.end) };
      const chunks = pages.read(c, q);
      for (const chunk of chunks) {
        // hand the packed bytes over instead of copying them, when they own their memory
        const b = chunk.bytes;
        if (b && b.byteOffset === 0 && b.byteLength === b.buffer.byteLength) transfer.push(b.buffer as ArrayBuffer);
      }
      reply = { id: req.id, chunks };
    } else if (req.op === 'changes') {
      const params: unknown[] = req.limit > 0 ? [req.from, req.to, req.limit] : [req.from, req.to];
      reply = { id: req.id, rows: c.get(st.changes(req.limit > 0)).all(...params) as DbRow[] };
    } else {
      const end = asBuffer(req.end);
      const row = c.get(st.count(end.length > 0)).get(...st.countParams(asBuffer(req.start), end, req.revision)) as DbRow;
      reply = { id: req.id, n: Number(row.n) };
    }
  } catch (err) {
    reply = { id: req.id, error: errorOf(err) };
  }
  port.postMessage(reply, transfer);
}

let c: StatementCache;
try {
  c = new StatementCache(connectSqlite(init.file, 'reader', init.description));
  port.postMessage({ ready: true });
  port.on('message', (req: ReadRequest) => answer(c, req));
} catch (err) {
  // the main thread terminates this worker when it reads this
  port.postMessage({ ready: false, error: errorOf(err) });
}

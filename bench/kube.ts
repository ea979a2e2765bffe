/**
 * Rows measured through a real kube-apiserver (tools/build.sh kube-apiserver): one API server on a real etcd
 * and one on the middleware (SQLite), in the same run, row by row. The load is plain HTTPS with keep-alive
 * from this process (the API servers, not the client, are the bottleneck: see cli cores in the table):
 *   kube-create-32  ConfigMap creates by 32 concurrent clients
 *   kube-list-10k   a full paged list of 10,000 ConfigMaps with limit=500 (20 pages), one client
 *   kube-watch      create -> watch event latency, one watcher, creates every 20 ms
 */
import { execFileSync } from 'node:child_process';
import https from 'node:https';
import path from 'node:path';
import { ETCD_BIN } from '../test/support/env.js';
import { KubeApiServer } from '../test/support/kube-apiserver.js';
import { toolDir } from '../test/support/tools.js';
import { kubeCall } from '../test/support/kube-request.js';
import { onCleanup } from './cleanup.js';
import { cpuSeconds } from './procfs.js';
import { startEtcd, startMiddleware, type MiddlewareLaunch } from './servers.js';
import type { FloorResult } from './floors.js';

export type KubeTarget = 'kube/etcd' | 'kube/mw-sqlite';

export interface RowResult {
  ops: number;
  errors: number;
  seconds: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  firstError?: string;
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

function summarize(latenciesMs: number[], ops: number, seconds: number, errors = 0): RowResult {
  const sorted = Float64Array.from(latenciesMs).sort();
  return { ops, errors, seconds, opsPerSec: seconds > 0 ? ops / seconds : 0, p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99) };
}

/** `clients` workers, one request each at a time, until `maxOps` or `maxMs`; stops after 50 errors. */
async function closedLoop(
  bounds: { clients: number; maxOps: number; maxMs: number },
  op: (client: number, seq: number) => Promise<unknown>,
  record = true,
): Promise<RowResult> {
  const latencies: number[] = [];
  let issued = 0;
  let done = 0;
  let errors = 0;
  let firstError: string | undefined;
  const start = performance.now();
  const deadline = start + bounds.maxMs;
  const worker = async (client: number) => {
    while (issued < bounds.maxOps && errors < 50 && performance.now() < deadline) {
      const seq = issued++;
      const t0 = performance.now();
      try {
        await op(client, seq);
        if (record) latencies.push(performance.now() - t0);
        done++;
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: bounds.clients }, (_, i) => worker(i)));
  return { ...summarize(latencies, done, (performance.now() - start) / 1000, errors), ...(firstError ? { firstError } : {}) };
}

export interface KubeMeasurement extends RowResult {
  row: string;
  target: KubeTarget;
  /** CPU seconds per wall second of the API server plus its storage server during the measurement. */
  serverCores: number;
  clientCores: number;
}

interface Api {
  target: KubeTarget;
  server: KubeApiServer;
  storagePid: number;
  agent: https.Agent;
  /** Stops the API server and its storage and removes their data (idempotent). */
  stop(): Promise<void>;
}

/**
 * The etcd under the reference API server: etcd 3.6 built by tools/build.sh etcd when there is one (kube-apiserver
 * serves consistent lists from its watch cache only on etcd >= 3.5.13, as on the middleware), else Debian's 3.4.
 */
export function referenceEtcd(): { bin: string; version: string } {
  const dir = toolDir('etcd');
  const bin = dir ? path.join(dir, 'etcd') : ETCD_BIN;
  let version = '?';
  try {
    version = execFileSync(bin, ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? '?';
  } catch {
    /* reported as ? */
  }
  return { bin, version };
}

const LIST_OBJECTS = 10_000;
const PAGE = 500;
const WATCH_EVENTS = 200;
const WATCH_INTERVAL_MS = 20;
/** Latency rows are judged on p99 (lower is better), throughput rows on ops/s. */
export const KUBE_ROWS = [
  { name: 'kube-create-32', what: 'ConfigMap creates, 32 clients', latency: false },
  { name: 'kube-list-10k', what: `paged list of ${LIST_OBJECTS} ConfigMaps, limit=${PAGE}`, latency: false },
  { name: 'kube-watch', what: `create -> watch event, ${WATCH_EVENTS} creates every ${WATCH_INTERVAL_MS} ms`, latency: true },
] as const;

/** One request through the API server's keep-alive agent; rejects on a non-2xx answer. */
function call(api: Api, method: string, path: string, body?: unknown): Promise<any> {
  return kubeCall(api.server, method, path, { body, agent: api.agent });
}

const configMap = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { payload: 'x'.repeat(256) } });

async function startApi(target: KubeTarget, launch: MiddlewareLaunch): Promise<Api> {
  const storage = target === 'kube/etcd' ? await startEtcd(toolDir('etcd') ? 'etcd-3.6' : 'etcd') : await startMiddleware('sqlite', launch);
  const server = await KubeApiServer.start({ etcd: storage.address, label: target }).catch(async (err) => {
    await storage.stop();
    throw err;
  });
  const agent = new https.Agent({ keepAlive: true, maxSockets: 64, ca: server.caPem });
  const stop = onCleanup(`stop kube-apiserver (${target}) and its storage`, async () => {
    agent.destroy();
    await server.destroy();
    await storage.stop();
  });
  const api: Api = { target, server, storagePid: storage.pid, agent, stop };
  for (const ns of ['bench-create', 'bench-list', 'bench-watch']) await call(api, 'POST', '/api/v1/namespaces', { metadata: { name: ns } });
  return api;
}

async function measure(api: Api, row: string, run: () => Promise<RowResult>): Promise<KubeMeasurement> {
  const pid = api.server.process!.child.pid!;
  const cpu0 = cpuSeconds(pid) + cpuSeconds(api.storagePid);
  const client0 = process.cpuUsage();
  const t0 = performance.now();
  const result = await run();
  const wall = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) + cpuSeconds(api.storagePid) - cpu0;
  const client = process.cpuUsage(client0);
  return { ...result, row, target: api.target, serverCores: cpu / wall, clientCores: (client.user + client.system) / 1e6 / wall };
}

function createRow(api: Api): Promise<KubeMeasurement> {
  return measure(api, 'kube-create-32', async () => {
    await closedLoop({ clients: 32, maxOps: 500, maxMs: 1_000 }, (_c, seq) => call(api, 'POST', '/api/v1/namespaces/bench-create/configmaps', configMap(`warm-${seq}`)), false);
    return closedLoop({ clients: 32, maxOps: 20_000, maxMs: 8_000 }, (_c, seq) => call(api, 'POST', '/api/v1/namespaces/bench-create/configmaps', configMap(`c-${seq}`)));
  });
}

async function fillList(api: Api): Promise<void> {
  const r = await closedLoop({ clients: 32, maxOps: LIST_OBJECTS, maxMs: 600_000 }, (_c, seq) =>
    call(api, 'POST', '/api/v1/namespaces/bench-list/configmaps', configMap(`l-${String(seq).padStart(5, '0')}`)), false);
  if (r.ops !== LIST_OBJECTS) throw new Error(`${api.target}: created ${r.ops} of ${LIST_OBJECTS} ConfigMaps (${r.errors} errors: ${r.firstError})`);
}

async function pagedList(api: Api): Promise<void> {
  let token: string | undefined;
  let items = 0;
  do {
    const page = await call(api, 'GET', `/api/v1/namespaces/bench-list/configmaps?limit=${PAGE}${token ? `&continue=${encodeURIComponent(token)}` : ''}`);
    items += page.items.length;
    token = page.metadata?.continue || undefined;
  } while (token);
  if (items !== LIST_OBJECTS) throw new Error(`${api.target}: paged list returned ${items} of ${LIST_OBJECTS}`);
}

function listRow(api: Api): Promise<KubeMeasurement> {
  return measure(api, 'kube-list-10k', async () => {
    await pagedList(api);
    return closedLoop({ clients: 1, maxOps: 100, maxMs: 8_000 }, () => pagedList(api));
  });
}

/** One watcher on bench-watch; creates every WATCH_INTERVAL_MS; latency = event arrival - create sent. */
function watchRow(api: Api): Promise<KubeMeasurement> {
  return measure(api, 'kube-watch', async () => {
    const start = await call(api, 'GET', '/api/v1/namespaces/bench-watch/configmaps?limit=1');
    const sent = new Map<string, number>();
    const latencies: number[] = [];
    let errors = 0;
    let firstError: string | undefined;
    let allArrived!: () => void;
    const arrived = new Promise<void>((r) => (allArrived = r));
    const req = https.request(`${api.server.url}/api/v1/namespaces/bench-watch/configmaps?watch=1&resourceVersion=${start.metadata.resourceVersion}`, {
      agent: false,
      ca: api.server.caPem,
      headers: { authorization: `Bearer ${api.server.token}` },
    });
    const opened = new Promise<void>((resolve, reject) => {
      req.on('response', (res) => {
        let buf = '';
        res.on('data', (c: Buffer) => {
          const now = performance.now();
          buf += c.toString('utf8');
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const ev = JSON.parse(buf.slice(0, nl));
            buf = buf.slice(nl + 1);
            const t = sent.get(ev.object?.metadata?.name);
            if (ev.type === 'ADDED' && t !== undefined) {
              latencies.push(now - t);
              if (latencies.length === WATCH_EVENTS) allArrived();
            }
          }
        });
        resolve();
      });
      req.on('error', reject);
    });
    req.end();
    await opened;
    const t0 = performance.now();
    for (let i = 0; i < WATCH_EVENTS; i++) {
      const name = `w-${i}`;
      sent.set(name, performance.now());
      call(api, 'POST', '/api/v1/namespaces/bench-watch/configmaps', configMap(name)).catch((e) => {
        errors++;
        firstError ??= (e as Error).message;
      });
      await new Promise((r) => setTimeout(r, WATCH_INTERVAL_MS));
    }
    const timeout = new Promise<void>((r) => setTimeout(r, 30_000));
    await Promise.race([arrived, timeout]);
    req.destroy();
    const seconds = (performance.now() - t0) / 1000;
    const missing = WATCH_EVENTS - latencies.length;
    return { ...summarize(latencies, latencies.length, seconds, errors + missing), ...(firstError ? { firstError } : missing ? { firstError: `${missing} events never arrived` } : {}) };
  });
}

export interface KubeResult {
  measurements: KubeMeasurement[];
  floors: FloorResult[];
  /** Why the rows did not run (a tool is missing); then measurements and floors are empty. */
  skipped?: string;
  /** What ran under the two API servers. */
  environment?: { kubeApiServer: string; etcd: string };
}

export const KUBE_ROW_NAMES: readonly string[] = KUBE_ROWS.map((r) => r.name);

/** Why the kube rows cannot run here, or undefined when they can. */
export function kubeRowsUnavailable(): string | undefined {
  if (!toolDir('kube-apiserver')) return 'kube rows: kube-apiserver is not built (bash tools/build.sh kube-apiserver; the first build takes tens of minutes)';
  return undefined;
}

function kubeApiServerVersion(): string {
  try {
    return execFileSync(path.join(toolDir('kube-apiserver')!, 'kube-apiserver'), ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
}

/**
 * Runs `rows` (default all of KUBE_ROWS) on kube-apiserver over etcd and over the middleware, row by row, or
 * says why not (kube-apiserver not built). Both API servers and their storage are stopped before it returns.
 */
export async function runKubeRows(launch: MiddlewareLaunch, log: (s: string) => void, rows: readonly string[] = KUBE_ROW_NAMES): Promise<KubeResult> {
  const why = kubeRowsUnavailable();
  if (why) return { measurements: [], floors: [], skipped: why };
  const unknown = rows.filter((r) => !KUBE_ROW_NAMES.includes(r));
  if (unknown.length) throw new Error(`unknown kube row(s) ${unknown.join(', ')} (kube rows: ${KUBE_ROW_NAMES.join(', ')})`);
  const apis: Api[] = [];
  const measurements: KubeMeasurement[] = [];
  try {
    for (const target of ['kube/etcd', 'kube/mw-sqlite'] as const) {
      log(`starting ${target}...`);
      apis.push(await startApi(target, launch));
    }
    const report = (m: KubeMeasurement) => {
      measurements.push(m);
      log(`  ${m.row.padEnd(14)} ${m.target.padEnd(15)} ${m.opsPerSec.toFixed(1).padStart(8)} ops/s  p50 ${m.p50Ms.toFixed(2)} ms  p99 ${m.p99Ms.toFixed(2)} ms` +
        (m.errors ? `  ${m.errors} errors (${m.firstError})` : ''));
    };
    if (rows.includes('kube-create-32')) for (const api of apis) report(await createRow(api));
    if (rows.includes('kube-list-10k')) {
      for (const api of apis) {
        log(`  filling ${LIST_OBJECTS} ConfigMaps into ${api.target}...`);
        await fillList(api);
      }
      for (const api of apis) report(await listRow(api));
    }
    if (rows.includes('kube-watch')) for (const api of apis) report(await watchRow(api));
  } finally {
    for (const api of apis) await api.stop();
  }
  return { measurements, floors: kubeFloors(measurements, rows), environment: { kubeApiServer: kubeApiServerVersion(), etcd: referenceEtcd().version } };
}

/** The issue's floor: >= 0.8x of kube-apiserver-on-etcd on each row (latency rows: etcd p99 / middleware p99). */
export function kubeFloors(ms: KubeMeasurement[], rows: readonly string[] = KUBE_ROW_NAMES): FloorResult[] {
  return KUBE_ROWS.filter((r) => rows.includes(r.name)).map(({ name, latency }) => {
    const e = ms.find((m) => m.row === name && m.target === 'kube/etcd');
    const w = ms.find((m) => m.row === name && m.target === 'kube/mw-sqlite');
    const floor = `${name} ${latency ? 'p99 latency' : 'throughput'} >= 0.8x kube-on-etcd`;
    if (!e || !w || e.errors || w.errors) return { floor, value: null, unit: 'x', pass: null, note: 'row not run or had errors' };
    const ratio = latency ? e.p99Ms / w.p99Ms : w.opsPerSec / e.opsPerSec;
    return { floor, value: ratio, unit: 'x kube-on-etcd', pass: ratio >= 0.8 };
  });
}

export function formatKubeTable(ms: KubeMeasurement[]): string {
  const header = ['row', 'on etcd ops/s', 'p50/p99 ms', 'on middleware (SQLite) ops/s', 'p50/p99 ms', 'thr x', 'p99 x', 'srv cores e/m', 'cli cores'];
  const lines: string[][] = [];
  for (const { name } of KUBE_ROWS) {
    const e = ms.find((m) => m.row === name && m.target === 'kube/etcd');
    const w = ms.find((m) => m.row === name && m.target === 'kube/mw-sqlite');
    if (!e || !w) continue;
    lines.push([
      name,
      e.opsPerSec.toFixed(1),
      `${e.p50Ms.toFixed(1)}/${e.p99Ms.toFixed(1)}`,
      w.opsPerSec.toFixed(1),
      `${w.p50Ms.toFixed(1)}/${w.p99Ms.toFixed(1)}`,
      (w.opsPerSec / e.opsPerSec).toFixed(2),
      (w.p99Ms / e.p99Ms).toFixed(2),
      `${e.serverCores.toFixed(2)}/${w.serverCores.toFixed(2)}`,
      Math.max(e.clientCores, w.clientCores).toFixed(2),
    ]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  return [header, ...lines].map((l) => l.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n');
}

/**
 * A small Kubernetes REST client: JSON requests and streaming watches over node:http(s), with connection
 * settings and credentials (kubeconfig, in-cluster token, exec plugins) applied by client-node's KubeConfig.
 * Plain objects in and out, so TopologyConfigs and Secrets round-trip without a serializer dropping fields.
 */
import http from 'node:http';
import https from 'node:https';
import { createInterface } from 'node:readline';
import type { KubeConfig } from '@kubernetes/client-node';

export type Query = Record<string, string | number | boolean | undefined>;

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    finalizers?: string[];
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

export interface KubeList<T> {
  metadata: { resourceVersion?: string; continue?: string };
  items: T[];
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

export type PatchType = 'merge' | 'json';

const PATCH_CONTENT_TYPE: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
};

/** An error status from the API server (`code` is the HTTP status; `reason` e.g. Conflict, NotFound). */
export class KubeApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly method: string,
    readonly path: string,
  ) {
    super(`${method} ${path}: ${code} ${reason}: ${message}`);
    this.name = 'KubeApiError';
  }
}

export const isNotFound = (e: unknown): boolean => e instanceof KubeApiError && e.code === 404;
export const isConflict = (e: unknown): boolean => e instanceof KubeApiError && e.code === 409;
export const isGone = (e: unknown): boolean => e instanceof KubeApiError && e.code === 410;

export interface KubeClient {
  request<T>(method: string, path: string, opts?: { query?: Query; body?: unknown; patch?: PatchType }): Promise<T>;
  /**
   * Streams watch events of `path` until the server ends the watch, `signal` aborts it (resolves), or the
   * connection fails (rejects). Non-200 answers reject with `KubeApiError`.
   */
  /** `onOpen` runs once the server accepted the watch (the connection works). */
  watch<T>(path: string, query: Query, onEvent: (event: WatchEvent<T>) => void, signal: AbortSignal, onOpen?: () => void): Promise<void>;
}

export interface KubeClientOptions {
  userAgent?: string;
  /** Per-request timeout for non-watch requests. */
  requestTimeoutMs?: number;
}

function withQuery(path: string, query: Query | undefined): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) params.set(k, String(v));
  const qs = params.toString();
  return qs ? `${path}${path.includes('?') ? '&' : '?'}${qs}` : path;
}

function statusError(method: string, path: string, code: number, body: string): KubeApiError {
  let reason = http.STATUS_CODES[code] ?? 'Error';
  let message = body.slice(0, 500);
  try {
    const status = JSON.parse(body) as { reason?: string; message?: string };
    if (status.reason) reason = status.reason;
    if (status.message) message = status.message;
  } catch {
    // not a Status object; keep the raw text
  }
  return new KubeApiError(code, reason, message, method, path);
}

export function kubeClient(kc: KubeConfig, options: KubeClientOptions = {}): KubeClient {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster: pass --kubeconfig or run in a cluster');
  const server = cluster.server.replace(/\/+$/, '');
  const timeoutMs = options.requestTimeoutMs ?? 30_000;

  async function open(method: string, path: string, headers: Record<string, string>, signal?: AbortSignal) {
    const url = new URL(server + path);
    const opts: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(opts); // CA, client certs, bearer token (re-read, so rotated tokens work)
    const transport = url.protocol === 'https:' ? https : http;
    return transport.request(url, {
      ...opts,
      method,
      signal,
      headers: {
        ...(opts.headers as Record<string, string> | undefined),
        Accept: 'application/json',
        ...(options.userAgent ? { 'User-Agent': options.userAgent } : {}),
        ...headers,
      },
    });
  }

  return {
    async request<T>(method: string, rawPath: string, opts: { query?: Query; body?: unknown; patch?: PatchType } = {}) {
      const path = withQuery(rawPath, opts.query);
      const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
      const headers: Record<string, string> = {};
      if (payload) {
        headers['Content-Type'] = opts.patch ? PATCH_CONTENT_TYPE[opts.patch] : 'application/json';
        headers['Content-Length'] = String(payload.length);
      }
      const signal = AbortSignal.timeout(timeoutMs);
      const req = await open(method, path, headers, signal);
      return new Promise<T>((resolve, reject) => {
        req.on('error', (e) =>
          reject(signal.aborted ? new Error(`${method} ${path}: no answer within ${timeoutMs} ms`) : new Error(`${method} ${path}: ${e.message}`)),
        );
        req.once('response', (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (e) => reject(new Error(`${method} ${path}: ${e.message}`)));
          res.once('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const code = res.statusCode ?? 0;
            if (code < 200 || code >= 300) return reject(statusError(method, path, code, text));
            try {
              resolve((text ? JSON.parse(text) : undefined) as T);
            } catch {
              reject(new Error(`${method} ${path}: answer is not JSON`));
            }
          });
        });
        req.end(payload);
      });
    },

    async watch<T>(rawPath: string, query: Query, onEvent: (event: WatchEvent<T>) => void, signal: AbortSignal, onOpen?: () => void) {
      const path = withQuery(rawPath, { ...query, watch: true });
      if (signal.aborted) return;
      const req = await open('GET', path, {}, signal);
      // A silent connection (no bytes, no close) would stall the informer: the server ends watches after
      // timeoutSeconds, so silence well beyond that means the connection is dead.
      const idleMs = (Number(query.timeoutSeconds ?? 300) + 30) * 1000;
      req.setTimeout(idleMs, () => req.destroy(new Error(`watch ${path}: no data for ${idleMs} ms`)));
      return new Promise<void>((resolve, reject) => {
        let settled = false;
        // Node drops a request's `signal` once the request body is sent, so a long watch needs its own hook.
        const onAbort = () => req.destroy();
        signal.addEventListener('abort', onAbort, { once: true });
        const finish = (err?: Error) => {
          if (settled) return;
          settled = true;
          signal.removeEventListener('abort', onAbort);
          req.destroy();
          if (err && !signal.aborted) reject(err);
          else resolve();
        };
        req.on('error', (e) => finish(new Error(`watch ${path}: ${e.message}`)));
        req.once('response', (res) => {
          const code = res.statusCode ?? 0;
          if (code !== 200) {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.once('end', () => finish(statusError('GET', path, code, Buffer.concat(chunks).toString('utf8'))));
            res.on('error', (e) => finish(e));
            return;
          }
          onOpen?.();
          const lines = createInterface({ input: res, crlfDelay: Infinity });
          lines.on('error', (e) => finish(new Error(`watch ${path}: ${e.message}`)));
          lines.on('line', (line) => {
            if (settled || !line.trim()) return;
            let event: WatchEvent<T>;
            try {
              event = JSON.parse(line) as WatchEvent<T>;
            } catch {
              req.destroy();
              finish(new Error(`watch ${path}: event is not JSON`));
              return;
            }
            try {
              onEvent(event);
            } catch (e) {
              req.destroy();
              finish(e as Error);
            }
          });
          res.on('error', (e) => finish(new Error(`watch ${path}: ${e.message}`)));
          res.once('aborted', () => finish(new Error(`watch ${path}: connection closed mid-stream`)));
          lines.once('close', () => finish(res.complete ? undefined : new Error(`watch ${path}: connection closed mid-stream`)));
        });
        req.end();
      });
    },
  };
}

/**
 * The operator's HTTP endpoints: /healthz (liveness), /readyz (readiness: caches filled; a standby is ready,
 * it says so), /metrics (Prometheus). Health and metrics may share one address or use two.
 */
import http from 'node:http';
import https from 'node:https';
import type { Authorizer } from './metrics-auth.js';
import type { AddressInfo } from 'node:net';
import { registry } from '../metrics.js';

export interface Probe {
  ok: boolean;
  /** One line for humans and kubelet logs. */
  message: string;
}

export interface HttpRoutes {
  healthz?: () => Probe;
  readyz?: () => Probe;
  metrics?: boolean;
  /** Checks the caller of /metrics (TokenReview + SubjectAccessReview); absent: open. */
  authorize?: Authorizer;
  /** Serve over HTTPS with this certificate. */
  tls?: { cert: Buffer; key: Buffer };
}

export interface RunningServer {
  port: number;
  close(): Promise<void>;
}

/** Parses `:8081`, `0.0.0.0:8081`, `127.0.0.1:0`, `[::1]:8081`; `0` or empty means disabled (undefined). */
export function parseBindAddress(address: string): { host?: string; port: number } | undefined {
  const text = address.trim();
  if (text === '' || text === '0') return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text);
  if (!m) throw new Error(`bind address "${address}" is not [host]:port (e.g. ":8081" or "127.0.0.1:8081"; "0" disables)`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`bind address "${address}": port ${port} is out of range`);
  const host = m[1] ?? m[2];
  return { host: host || undefined, port };
}

export async function startHttpServer(address: { host?: string; port: number }, routes: HttpRoutes): Promise<RunningServer> {
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    const probe = path === '/healthz' ? routes.healthz : path === '/readyz' ? routes.readyz : undefined;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
      return;
    }
    if (probe) {
      const { ok, message } = probe();
      res.writeHead(ok ? 200 : 503, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`${message}\n`);
      return;
    }
    if (path === '/metrics' && routes.metrics) {
      const allowed = routes.authorize ? routes.authorize(req.headers.authorization, path) : Promise.resolve({ status: 200 as const, message: 'ok' });
      allowed
        .then(async ({ status, message }) => {
          if (status !== 200) return void res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`${message}\n`);
          const text = await registry.metrics();
          res.writeHead(200, { 'Content-Type': registry.contentType }).end(text);
        })
        .catch((e: Error) => res.writeHead(500).end(`metrics failed: ${e.message}\n`));
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n');
  };
  const server = routes.tls ? https.createServer({ cert: routes.tls.cert, key: routes.tls.key }, handler) : http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new Error(`cannot listen on ${address.host ?? ''}:${address.port}: ${e.message}`)));
    server.listen(address.port, address.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

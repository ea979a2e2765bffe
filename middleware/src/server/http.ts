/** The HTTP side: Prometheus `/metrics`, liveness `/healthz`, readiness `/readyz` (storage answers). */
import http from 'node:http';
import { registry } from '../metrics.js';
import type { MigrationStatus } from '../migration/status.js';

export interface Probes {
  ready(): Promise<boolean>;
}

/** The HTTP side, plus GET /migrations (JSON, `harikube migrate status`) when a status is given. */
export function startHttpServer(host: string, port: number, probes: Probes, migrations?: () => MigrationStatus): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (code: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(code, { 'content-type': type });
      res.end(body);
    };
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => send(200, text, registry.contentType),
        (err: unknown) => send(500, String(err)),
      );
    } else if (path === '/healthz' || path === '/livez') {
      send(200, 'ok\n');
    } else if (path === '/readyz') {
      probes.ready().then(
        (ok) => send(ok ? 200 : 503, ok ? 'ok\n' : 'storage unavailable\n'),
        () => send(503, 'storage unavailable\n'),
      );
    } else if (path === '/migrations' && migrations) {
      send(200, `${JSON.stringify(migrations())}\n`, 'application/json');
    } else {
      send(404, 'not found: try /metrics, /healthz, /readyz or /migrations\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host || undefined, () => resolve(server));
  });
}

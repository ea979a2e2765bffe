/** Prometheus metrics of online migration (`harikube migrate status` shows the same from /migrations). */
import { Counter, Gauge } from 'prom-client';
import { registry } from '../metrics.js';

export const migrationMetrics = {
  sources: new Gauge({ name: 'harikube_migration_sources', help: 'Backends that still hold keys the topology routes elsewhere (0: no migration runs).', registers: [registry] }),
  keysMoved: new Counter({
    name: 'harikube_migration_keys_moved_total',
    help: 'Keys moved out of a migration source into their owner, by source.',
    labelNames: ['source'],
    registers: [registry],
  }),
  keysRemaining: new Gauge({
    name: 'harikube_migration_keys_remaining',
    help: 'Keys still to move out of a migration source, as of its last scan, by source.',
    labelNames: ['source'],
    registers: [registry],
  }),
  errors: new Counter({
    name: 'harikube_migration_errors_total',
    help: 'Failed migration steps (retried with backoff), by source.',
    labelNames: ['source'],
    registers: [registry],
  }),
};

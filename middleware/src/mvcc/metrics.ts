/** Prometheus metrics of the store: revision, compaction, write batching, leases. */
import { Counter, Gauge, Histogram } from 'prom-client';
import { registry } from '../metrics.js';

export const storeMetrics = {
  revision: new Gauge({ name: 'harikube_revision', help: 'Commit watermark: the revision reads and watches see.', registers: [registry] }),
  compactRevision: new Gauge({ name: 'harikube_compact_revision', help: 'Revision compacted up to.', registers: [registry] }),
  batchSize: new Histogram({
    name: 'harikube_write_batch_size',
    help: 'Client writes committed per database transaction (group commit).',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    registers: [registry],
  }),
  commitSeconds: new Histogram({
    name: 'harikube_write_batch_seconds',
    help: 'Time to apply and commit one write batch.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  }),
  compactedRows: new Counter({ name: 'harikube_compacted_rows_total', help: 'Rows removed by compaction.', registers: [registry] }),
  leases: new Gauge({ name: 'harikube_leases', help: 'Leases held.', registers: [registry] }),
  readCacheRequests: new Counter({
    name: 'harikube_read_cache_requests_total',
    help: 'Gets (Ranges of one key at the newest revision) looked up in the read cache, by result (hit, miss).',
    labelNames: ['result'],
    registers: [registry],
  }),
  readCacheBytes: new Gauge({ name: 'harikube_read_cache_bytes', help: 'Bytes held by the read cache (estimated: keys, values, per-entry overhead).', registers: [registry] }),
  expiredLeases: new Counter({ name: 'harikube_leases_expired_total', help: 'Leases revoked by expiry.', registers: [registry] }),
};

/** The operator's Prometheus metrics, on the process registry (served on /metrics). */
import { Counter, Gauge, Histogram } from 'prom-client';
import { registry } from '../metrics.js';

export const reconcilesTotal = new Counter({
  name: 'harikube_operator_reconciles_total',
  help: 'Reconciles of topology Secrets, by result (success, error, requeue).',
  labelNames: ['result'] as const,
  registers: [registry],
});

export const reconcileSeconds = new Histogram({
  name: 'harikube_operator_reconcile_duration_seconds',
  help: 'Time one reconcile of a topology Secret took.',
  buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

export const queueDepth = new Gauge({
  name: 'harikube_operator_queue_depth',
  help: 'Topology Secrets waiting to be reconciled.',
  registers: [registry],
});

export const isLeaderGauge = new Gauge({
  name: 'harikube_operator_leader',
  help: '1 while this replica is the leader (the only one writing), else 0.',
  registers: [registry],
});

export const topologyConfigsByStatus = new Gauge({
  name: 'harikube_operator_topologyconfigs',
  help: 'TopologyConfigs known to the operator, by status.deployStatus.',
  labelNames: ['status'] as const,
  registers: [registry],
});

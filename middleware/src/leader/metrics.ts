/** Prometheus metrics of leader election. */
import { Counter, Gauge } from 'prom-client';
import { registry } from '../metrics.js';

export const leaderMetrics = {
  isLeader: new Gauge({ name: 'harikube_leader', help: '1 while this replica holds the leader lease (with --leader-elect).', registers: [registry] }),
  transitions: new Counter({ name: 'harikube_leader_acquired_total', help: 'Times this replica acquired the leader lease.', registers: [registry] }),
};

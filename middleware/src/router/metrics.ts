/** Prometheus metrics of routing: the topology in effect and how changes to it went. */
import { Counter, Gauge } from 'prom-client';
import { registry } from '../metrics.js';

export const topologyMetrics = {
  rules: new Gauge({ name: 'harikube_topology_rules', help: 'Routing rules in effect.', registers: [registry] }),
  applies: new Counter({
    name: 'harikube_topology_applies_total',
    help: 'Topology documents received, by result (applied, unchanged, refused, unusable: unreadable or invalid).',
    labelNames: ['result'],
    registers: [registry],
  }),
  pendingReverts: new Gauge({
    name: 'harikube_pending_reverts',
    help: 'Writes that did not commit everywhere whose rows are still to be taken back, by rule ("default": the default backend); requests touching such a rule fail until it is done.',
    labelNames: ['rule'],
    registers: [registry],
  }),
  lastApplyFailed: new Gauge({
    name: 'harikube_topology_last_apply_failed',
    help: '1 when the last topology document received was refused or unusable (the previous one stays in effect).',
    registers: [registry],
  }),
};

/** A topology source delivered nothing usable (unreadable or invalid): the topology in effect stays. */
export function countUnusableTopology(): void {
  topologyMetrics.applies.inc({ result: 'unusable' });
  topologyMetrics.lastApplyFailed.set(1);
}

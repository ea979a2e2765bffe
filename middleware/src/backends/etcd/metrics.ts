/** Prometheus metrics of the etcd backend's commits: how well the pipelined chain (txn-chain.ts) batches. */
import { Counter } from 'prom-client';
import { registry } from '../../metrics.js';

export const etcdBackendMetrics = {
  commitRounds: new Counter({
    name: 'harikube_etcd_backend_commit_rounds_total',
    help: 'Rounds of pipelined etcd transactions sent by commits and reverts (one per batch unless etcd handled some out of order), by backend.',
    labelNames: ['backend'],
    registers: [registry],
  }),
  commitTxns: new Counter({
    name: 'harikube_etcd_backend_commit_txns_total',
    help: 'etcd transactions sent by commits and reverts, by backend and result: applied, or resent (it arrived before the one it follows and changed nothing).',
    labelNames: ['backend', 'result'],
    registers: [registry],
  }),
};

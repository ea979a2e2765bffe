/** Prometheus metrics of the etcd backend's commits: how many etcd transactions a batch costs (txn-chain.ts). */
import { Counter } from 'prom-client';
import { registry } from '../../metrics.js';

export const etcdBackendMetrics = {
  commits: new Counter({
    name: 'harikube_etcd_backend_commits_total',
    help: 'Write batches committed (or tried) to the etcd, by backend: commit_rounds over commits is the etcd transactions per batch.',
    labelNames: ['backend'],
    registers: [registry],
  }),
  commitRounds: new Counter({
    name: 'harikube_etcd_backend_commit_rounds_total',
    help: 'Round trips of etcd transactions sent by commits and reverts (one per transaction, each awaited; a batch is normally one), by backend.',
    labelNames: ['backend'],
    registers: [registry],
  }),
  commitTxns: new Counter({
    name: 'harikube_etcd_backend_commit_txns_total',
    help: 'etcd transactions sent by commits and reverts, by backend and result (applied: each is awaited, none is resent).',
    labelNames: ['backend', 'result'],
    registers: [registry],
  }),
};

/**
 * The HariKube Pulumi package: components that deploy the platform, and the pure functions behind them.
 */
export * from './kube.js';
export * from './paths.js';
export * from './databaseOperators.js';
export * from './postgresCluster.js';
export * from './mariaDbInstance.js';
export * from './etcdCluster.js';
export * from './topologyOperator.js';
export * from './middlewareImage.js';
export * from './topology.js';
export * from './middleware.js';
export * from './appTopology.js';
export * from './platform.js';

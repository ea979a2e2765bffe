/**
 * An application team's stack: its own PostgreSQL (CloudNativePG, installed by the platform) and the rules
 * that store the team's Kubernetes objects there:
 *
 * - everything in the `shop` namespace (built-in kinds) -> database `shop`,
 * - the team's custom resources (`shop.example.com`) -> database `orders`.
 *
 * The rules become a TopologyConfig (AppTopology). Endpoints carry credentials, so they are sealed with the
 * platform's key (a secret output of the platform stack) and opened only by the operator; `pulumi up` waits
 * until the operator reports the rules Ready, so nothing of the application is created before its routing is
 * active.
 */
import * as pulumi from '@pulumi/pulumi';
import * as k8s from '@pulumi/kubernetes';
import { AppTopology, appTopologySettings } from '../../components/appTopology.js';
import { PostgresCluster } from '../../components/postgresCluster.js';

const config = new pulumi.Config();
const platform = new pulumi.StackReference(config.require('platformStack'));
const namespaceName = config.require('namespace');

const namespace = new k8s.core.v1.Namespace('app-namespace', { metadata: { name: namespaceName } });

// The team's database: one cluster, one database per rule (each rule is a backend with its own identity).
const db = new PostgresCluster('shop-db', {
  namespace: namespace.metadata.name,
  clusterName: 'shop-db',
  instances: 2,
  storageSize: '20Gi',
  database: 'shop',
  databases: ['orders'],
});

// Fails the preview with the platform's reason if it does not route application TopologyConfigs.
const { targetSecret, encryption } = appTopologySettings(platform);

const topology = new AppTopology('shop-topology', {
  namespace: namespace.metadata.name,
  resourceName: 'shop',
  position: config.requireNumber('position'),
  targetSecret,
  encryption,
  rules: [
    { name: 'shop', endpoint: db.endpoint, namespace: { namespace: namespaceName } },
    { name: 'shop-orders', endpoint: db.endpointFor('orders'), customresource: { group: 'shop.example.com' } },
  ],
});

// The application's own objects wait for its routing (dependsOn a component waits for all its children).
new k8s.core.v1.ConfigMap(
  'shop-settings',
  { metadata: { name: 'shop-settings', namespace: namespace.metadata.name }, data: { currency: 'EUR' } },
  { dependsOn: [topology] },
);

/** The TopologyConfig as applied (sealed endpoints: a secret output, so previews show no ciphertext diff). */
export const topologyConfig = pulumi.secret(topology.spec);
/** The rules, readable (backend kind, host and database; no credentials). */
export const routing = topology.routing;

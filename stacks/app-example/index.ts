/**
 * An application team's stack: its own PostgreSQL (CloudNativePG, installed by the platform) and the rules
 * that store the team's Kubernetes objects there:
 *
 * - everything in the `shop` namespace (built-in kinds) -> database `shop`,
 * - the team's custom resources (`shop.example.com`) -> database `orders`.
 *
 * The rules become a TopologyConfig (AppTopology). Endpoints carry credentials, so they are sealed with the
 * platform's key (a secret output of the platform stack) and opened only by the operator; `pulumi up` waits
 * until the TopologyConfig is Active, i.e. until every middleware reading the platform's Secret has applied
 * the rules, so nothing of the application is created before its routing is active.
 *
 * The team's database does not store its own objects: its Secret (and, in a real cluster, CloudNativePG's
 * pods, Services and Secrets of the database) live in the team's system namespace (`shop-system`) with the
 * TopologyConfig, outside the namespace the rules route. Were they in `shop`, they would move into the very
 * database they describe, and a database that is down could not be brought back (the API server could not
 * read its pods). `shop` itself is created once the rules are live, so nothing in it has to be migrated.
 */
import * as pulumi from '@pulumi/pulumi';
import * as k8s from '@pulumi/kubernetes';
import { AppTopology, appTopologySettings } from '../../components/appTopology.js';
import { PostgresCluster } from '../../components/postgresCluster.js';

const config = new pulumi.Config();
const platform = new pulumi.StackReference(config.require('platformStack'));
const namespaceName = config.require('namespace');
const systemNamespaceName = config.require('systemNamespace');

// Where the team's database and its TopologyConfig live; not routed by the rules below.
const systemNamespace = new k8s.core.v1.Namespace('system-namespace', { metadata: { name: systemNamespaceName } });

// The team's database: one cluster, one database per rule (each rule is a backend with its own identity).
const db = new PostgresCluster('shop-db', {
  namespace: systemNamespace.metadata.name,
  clusterName: 'shop-db',
  instances: 2,
  storageSize: '20Gi',
  database: 'shop',
  databases: ['orders'],
});

// Fails the preview with the platform's reason if it does not route application TopologyConfigs.
const { targetSecret, encryption } = appTopologySettings(platform);

const topology = new AppTopology('shop-topology', {
  namespace: systemNamespace.metadata.name,
  resourceName: 'shop',
  position: config.requireNumber('position'),
  targetSecret,
  encryption,
  rules: [
    { name: 'shop', endpoint: db.endpoint, namespace: { namespace: namespaceName } },
    { name: 'shop-orders', endpoint: db.endpointFor('orders'), customresource: { group: 'shop.example.com' } },
  ],
});

// The application's namespace and objects wait for its routing (dependsOn a component waits for all its
// children, and the TopologyConfig for Active).
const namespace = new k8s.core.v1.Namespace('app-namespace', { metadata: { name: namespaceName } }, { dependsOn: [topology] });
new k8s.core.v1.ConfigMap(
  'shop-settings',
  { metadata: { name: 'shop-settings', namespace: namespace.metadata.name }, data: { currency: 'EUR' } },
  { dependsOn: [topology] },
);

/** The TopologyConfig as applied (sealed endpoints: a secret output, so previews show no ciphertext diff). */
export const topologyConfig = pulumi.secret(topology.spec);
/** The rules, readable (backend kind, host and database; no credentials). */
export const routing = topology.routing;

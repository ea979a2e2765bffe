/**
 * The platform stack: HariKube (database operators and instances, the TopologyConfig operator, middleware
 * layers) from the stack's configuration (`Pulumi.<stack>.yaml`, checked by `config.ts`).
 *
 *   pulumi up -s dev      # SQLite default + one PostgreSQL, one layer
 *   pulumi up -s prod     # PostgreSQL + MariaDB + etcd, two layers, TLS, operator-managed root topology
 */
import * as pulumi from '@pulumi/pulumi';
import { HariKubePlatform } from '../../components/platform.js';
import { platformArgs, readPlatformConfig } from './config.js';

const config = new pulumi.Config('harikube');
const settings = readPlatformConfig(config);
const platform = new HariKubePlatform('harikube', platformArgs(settings, config));

/** What the Kubernetes API server's `--etcd-servers` points at. */
export const endpoint = platform.endpoint;
export const namespace = platform.namespace;
/** Routing tables per layer (no endpoints, no credentials): review these in `pulumi preview --diff`. */
export const routing = platform.routing;
/**
 * For application stacks (StackReference; read with `appTopologySettings()`): where TopologyConfigs go and how
 * to seal their endpoints, or why this platform does not route them.
 */
export const appTopologies = pulumi.secret(platform.appTopologies);
export const targetSecret = platform.targetSecret;
export const decryptSecret = platform.decryptSecret;
export const topologyEncryptionKey = platform.encryptionKey;
/** Secret with the API server's client certificate (TLS on). */
export const apiServerClientSecret = platform.apiServerClientSecretName;
export const layers = Object.keys(platform.layers);

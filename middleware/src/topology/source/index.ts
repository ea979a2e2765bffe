/** Topology sources (`TOPOLOGY_CONFIG`): file://, http(s)://, secret://, with hot reload. */
export * from './source.js';
export * from './create.js';
export { FileTopologySource, type FileSourceOptions } from './file-source.js';
export { HttpTopologySource, redactUrl, type HttpSourceOptions } from './http-source.js';
export {
  SecretTopologySource,
  readTopologySecret,
  formatSecretIssue,
  type SecretSourceOptions,
  type SecretTopologyIssue,
  type TopologySecretOptions,
} from './secret-source.js';

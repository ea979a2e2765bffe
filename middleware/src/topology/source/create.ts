/**
 * The topology source a `TOPOLOGY_CONFIG` spec names (file://, http(s)://, secret://), with its options. Apart
 * from the contract and `SourceCore` (source.ts), which every source imports: the sources import down, this
 * file imports them.
 */
import { logger as rootLogger, type Logger } from '../../log.js';
import { FileTopologySource } from './file-source.js';
import { HttpTopologySource, redactUrl } from './http-source.js';
import { SecretTopologySource } from './secret-source.js';
import type { StoredKeyReader, TopologySource } from './source.js';

export interface SourceDeps {
  /** The middleware's store; required for secret://. */
  keys?: StoredKeyReader;
  logger?: Logger;
  /** http(s) poll interval ms, default 60000 */
  pollIntervalMs?: number;
  /** TOPOLOGY_CONFIG_TLS_DIR */
  tlsDir?: string;
  /** http(s) timeout of each request (headers and body) in ms, default 10000. */
  requestTimeoutMs?: number;
  /** file:// fallback re-stat interval ms, in case fs.watch misses an event; default 5000. */
  fileStatIntervalMs?: number;
  /** file:// uses fs.watch on the file's directory (default true); false leaves only the re-stat (filesystems without change notification). */
  fileWatch?: boolean;
}

const SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/(.*)$/s;
const KNOWN_SCHEMES = ['file', 'http', 'https', 'secret'];
const USAGE = 'use file://path, http(s)://url or secret://namespace/name';

/** Parses TOPOLOGY_CONFIG: file://path (relative or absolute: file://./t.yaml, file:///abs/t.yaml), http(s)://url, secret://namespace/name. A bare path without scheme is a file. Throws a clear error for anything else. */
export function createTopologySource(spec: string, deps: SourceDeps = {}): TopologySource {
  const text = spec.trim();
  const log = deps.logger ?? rootLogger.child({ component: 'topology-source' });
  if (!text) throw new Error(`TOPOLOGY_CONFIG is empty; ${USAGE}`);
  const m = SCHEME.exec(text);
  if (!m) {
    // "secret:ns/name" or "file:t.yaml" is a typo of a URL rather than a file named like that
    const bare = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(text);
    if (bare && KNOWN_SCHEMES.includes(bare[1]!.toLowerCase())) {
      throw new Error(`TOPOLOGY_CONFIG "${redactUrl(text)}" lacks "//" after "${bare[1]}:"; ${USAGE}`);
    }
    return new FileTopologySource(text, fileOptions(deps, log));
  }
  const scheme = m[1]!.toLowerCase();
  const rest = m[2]!;
  switch (scheme) {
    case 'file':
      if (!rest) throw new Error(`TOPOLOGY_CONFIG "${text}" names no file; e.g. file:///etc/harikube/topology.yaml or file://./topology.yaml`);
      return new FileTopologySource(rest, fileOptions(deps, log));
    case 'http':
    case 'https':
      return new HttpTopologySource(text, {
        logger: log,
        pollIntervalMs: positive(deps.pollIntervalMs, 60_000, 'pollIntervalMs'),
        requestTimeoutMs: positive(deps.requestTimeoutMs, 10_000, 'requestTimeoutMs'),
      });
    case 'secret': {
      const parts = rest.split('/');
      if (parts.length !== 2 || !parts[0] || !parts[1]) {
        throw new Error(`TOPOLOGY_CONFIG "${text}" must be secret://namespace/name, e.g. secret://harikube/topology-config`);
      }
      if (!deps.keys) throw new Error(`TOPOLOGY_CONFIG "${text}" needs the middleware's store to read the Secret from (no StoredKeyReader given)`);
      return new SecretTopologySource(parts[0], parts[1], { keys: deps.keys, logger: log, tlsDir: deps.tlsDir });
    }
    default:
      throw new Error(`TOPOLOGY_CONFIG "${redactUrl(text)}" has the unknown scheme "${m[1]}"; ${USAGE}`);
  }
}

function fileOptions(deps: SourceDeps, log: Logger) {
  return {
    logger: log,
    statIntervalMs: positive(deps.fileStatIntervalMs, 5_000, 'fileStatIntervalMs'),
    watch: deps.fileWatch ?? true,
  };
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`topology source option ${name} must be a positive number of milliseconds, got ${value}`);
  return value;
}

/**
 * Paths inside the middleware container: shared by `Topology` (which writes file paths into the compiled
 * document) and `Middleware` (which mounts the volumes there), so the two cannot disagree.
 */

/** Writable data volume (PVC or emptyDir): SQLite files, including the default backend's. */
export const MIDDLEWARE_DATA_DIR = '/var/lib/harikube';
/** The compiled topology Secret: `topology.yaml` and inline TLS material of rules. */
export const TOPOLOGY_MOUNT_PATH = '/etc/harikube/topology';
/** Per-rule TLS Secrets (`<dir>/<rule>/{ca.crt,tls.crt,tls.key}`), e.g. cert-manager client certificates. */
export const BACKEND_TLS_DIR = '/etc/harikube/backend-tls';
/** The middleware's serving certificate (`tls.crt`, `tls.key`, `ca.crt`). */
export const SERVER_TLS_DIR = '/etc/harikube/tls';
/** Writable directory for TLS material that arrives with a `secret://` topology (`TOPOLOGY_CONFIG_TLS_DIR`). */
export const TOPOLOGY_TLS_WORK_DIR = '/var/run/harikube/topology-tls';

/** The default backend when none is given: a SQLite file on the data volume. */
export const DEFAULT_SQLITE_ENDPOINT = `sqlite://${MIDDLEWARE_DATA_DIR}/default.db`;

/** A SQLite endpoint for a file on the data volume. */
export function sqliteOnDataVolume(file: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(file)) throw new Error(`SQLite file name "${file}" may hold only letters, digits, ".", "_" and "-"`);
  return `sqlite://${MIDDLEWARE_DATA_DIR}/${file}`;
}

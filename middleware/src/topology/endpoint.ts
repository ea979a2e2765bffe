/**
 * Endpoint strings of topology rules and `--endpoint`, parsed into what a backend needs to connect.
 *
 * Formats (TOPOLOGY.md): `http(s)://host:port[,host:port...]` (etcd or another middleware),
 * `mysql://user:pass@tcp(host:port)/db`, `postgres://` / `postgresql://user:pass@host:port/db`,
 * `sqlite://./relative.db?...` / `sqlite:///absolute.db?...`.
 */

export interface SqliteEndpoint {
  kind: 'sqlite';
  /** File path as given (relative paths resolve against the working directory); `:memory:` allowed. */
  path: string;
  params: Record<string, string>;
}

export interface SqlServerEndpoint {
  kind: 'postgres' | 'mysql';
  user: string;
  password: string;
  host: string;
  port: number;
  database: string;
  params: Record<string, string>;
}

export interface EtcdEndpoint {
  kind: 'etcd';
  /** `host:port` of every member, in the order given. */
  hosts: string[];
  tls: boolean;
}

export type Endpoint = SqliteEndpoint | SqlServerEndpoint | EtcdEndpoint;

export class EndpointError extends Error {
  constructor(endpoint: string, problem: string) {
    super(`endpoint "${redactEndpoint(endpoint)}": ${problem}`);
    this.name = 'EndpointError';
  }
}

const SCHEMES = 'sqlite://, postgres://, postgresql://, mysql://, http:// or https://';

function queryParams(query: string | undefined): Record<string, string> {
  const params: Record<string, string> = {};
  if (query) for (const [k, v] of new URLSearchParams(query)) params[k] = v;
  return params;
}

function splitQuery(rest: string): [string, string | undefined] {
  const q = rest.indexOf('?');
  return q < 0 ? [rest, undefined] : [rest.slice(0, q), rest.slice(q + 1)];
}

function hostPort(endpoint: string, text: string, defaultPort: number): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:/]+)(?::(\d+))?$/.exec(text);
  if (!m) throw new EndpointError(endpoint, `"${text}" is not host:port`);
  const port = m[2] ? Number(m[2]) : defaultPort;
  if (port < 1 || port > 65535) throw new EndpointError(endpoint, `port ${port} is out of range`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

function userInfo(endpoint: string, text: string): { user: string; password: string } {
  const colon = text.indexOf(':');
  const decode = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      throw new EndpointError(endpoint, 'user or password has a malformed %-escape');
    }
  };
  return colon < 0 ? { user: decode(text), password: '' } : { user: decode(text.slice(0, colon)), password: decode(text.slice(colon + 1)) };
}

function parseSqlServer(endpoint: string, kind: 'postgres' | 'mysql', rest: string): SqlServerEndpoint {
  const [main, query] = splitQuery(rest);
  const at = main.lastIndexOf('@');
  const creds = at < 0 ? { user: kind === 'mysql' ? 'root' : 'postgres', password: '' } : userInfo(endpoint, main.slice(0, at));
  const afterAt = at < 0 ? main : main.slice(at + 1);
  const slash = afterAt.indexOf('/', afterAt.startsWith('tcp(') ? afterAt.indexOf(')') : 0);
  let hostText = slash < 0 ? afterAt : afterAt.slice(0, slash);
  const database = slash < 0 ? '' : decodeURIComponent(afterAt.slice(slash + 1));
  const tcp = /^tcp\((.*)\)$/.exec(hostText);
  if (tcp) hostText = tcp[1]!;
  if (!hostText) throw new EndpointError(endpoint, 'no host given');
  if (!database) throw new EndpointError(endpoint, `no database name given (add "/<database>" after the host)`);
  if (!/^[A-Za-z0-9_$-]+$/.test(database)) {
    throw new EndpointError(endpoint, `database name "${database}" may hold only letters, digits, "_", "$" and "-"`);
  }
  const { host, port } = hostPort(endpoint, hostText, kind === 'mysql' ? 3306 : 5432);
  return { kind, ...creds, host, port, database, params: queryParams(query) };
}

/** Parses an endpoint; throws `EndpointError` naming what is wrong (credentials redacted). */
export function parseEndpoint(endpoint: string): Endpoint {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/(.*)$/s.exec(endpoint.trim());
  if (!m) throw new EndpointError(endpoint, `has no scheme: use ${SCHEMES}`);
  const scheme = m[1]!.toLowerCase();
  const rest = m[2]!;
  switch (scheme) {
    case 'sqlite': {
      const [path, query] = splitQuery(rest);
      if (!path) throw new EndpointError(endpoint, 'no file path given (e.g. sqlite://./db/state.db)');
      return { kind: 'sqlite', path, params: queryParams(query) };
    }
    case 'postgres':
    case 'postgresql':
      return parseSqlServer(endpoint, 'postgres', rest);
    case 'mysql':
      return parseSqlServer(endpoint, 'mysql', rest);
    case 'http':
    case 'https': {
      const tls = scheme === 'https';
      const hosts = rest
        .replace(/\/+$/, '')
        .split(',')
        .map((h) => h.trim().replace(/^https?:\/\//, ''));
      for (const h of hosts) {
        if (!h) throw new EndpointError(endpoint, 'empty host in the member list');
        const { host, port } = hostPort(endpoint, h, tls ? 2379 : 2379);
        if (!host) throw new EndpointError(endpoint, `"${h}" has no host`);
        void port;
      }
      return { kind: 'etcd', hosts, tls };
    }
    default:
      throw new EndpointError(endpoint, `unknown scheme "${scheme}": use ${SCHEMES}`);
  }
}

/** The endpoint with any password replaced by `***`, safe for logs, events and status. */
export function redactEndpoint(endpoint: string): string {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)(.*)$/s.exec(endpoint);
  if (!m) return endpoint;
  const [, scheme, rest] = m as unknown as [string, string, string];
  const q = rest.indexOf('?');
  const main = q < 0 ? rest : rest.slice(0, q);
  // the same split as the parser: credentials end at the last "@" (passwords may contain "@")
  const at = main.lastIndexOf('@');
  if (at < 0) return endpoint;
  const colon = main.indexOf(':');
  if (colon < 0 || colon > at) return endpoint;
  return `${scheme}${main.slice(0, colon)}:***${rest.slice(at)}`;
}

/**
 * Endpoint strings of topology rules and `--endpoint`, parsed into what a backend needs to connect.
 *
 * Formats (README, "Other databases"): `http(s)://host:port[,host:port...]` (etcd or another middleware),
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
    // the problem may quote a part of the endpoint (a host, a database name) that holds a credential
    super(`endpoint "${redactEndpoint(endpoint)}": ${scrubCredentials(problem, endpoint)}`);
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

/** Query parameters whose values are credentials (`password`, `sslpassword`, `passwd`, `pwd`, `token`, ...). */
const SECRET_PARAM = /pass|pwd|secret|token|credential|auth|api[-_]?key/i;

/** Replaces the values of credential query parameters in `query` (without its "?") by `***`. */
function redactQuery(query: string): string {
  return query
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq < 0) return pair;
      let name = pair.slice(0, eq);
      try {
        name = decodeURIComponent(name.replace(/\+/g, ' '));
      } catch {
        return `${pair.slice(0, eq)}=***`; // undecodable name: keep nothing that might be a secret
      }
      return SECRET_PARAM.test(name) ? `${pair.slice(0, eq)}=***` : pair;
    })
    .join('&');
}

/**
 * The endpoint with every credential the parser accepts replaced by `***`: the password of the user info
 * (everything between the first ":" and the last "@", so passwords holding "@", "/", "?" or "," are hidden
 * whole, also in an etcd member list) and the values of credential query parameters (`password=`,
 * `sslpassword=`, `token=`, ...), in every scheme. Safe for logs, errors, events, metrics and status.
 */
export function redactEndpoint(endpoint: string): string {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)(.*)$/s.exec(endpoint);
  if (!m) return endpoint;
  const [, scheme, rest] = m as unknown as [string, string, string];
  let authority = '';
  let tail = rest;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    const colon = userinfo.indexOf(':');
    // an "@" inside a query value (no ":" before it) is not user info
    if (colon >= 0 || !/[/?]/.test(userinfo)) {
      authority = `${colon < 0 ? userinfo : `${userinfo.slice(0, colon)}:***`}@`;
      tail = rest.slice(at + 1);
    }
  }
  const q = tail.indexOf('?');
  if (q >= 0) tail = `${tail.slice(0, q)}?${redactQuery(tail.slice(q + 1))}`;
  return `${scheme}${authority}${tail}`;
}

/** Credentials in `endpoint` as they may appear in text built from it (raw and %-decoded). */
function secretsOf(endpoint: string): string[] {
  const secrets = new Set<string>();
  const add = (v: string) => {
    if (v.length === 0) return;
    secrets.add(v);
    try {
      secrets.add(decodeURIComponent(v.replace(/\+/g, ' ')));
    } catch {
      // raw form only
    }
  };
  const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/(.*)$/s.exec(endpoint);
  if (!m) return [];
  const rest = m[1]!;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    const colon = userinfo.indexOf(':');
    if (colon >= 0) add(userinfo.slice(colon + 1));
  }
  const q = rest.indexOf('?');
  if (q >= 0) {
    for (const pair of rest.slice(q + 1).split('&')) {
      const eq = pair.indexOf('=');
      if (eq >= 0 && redactQuery(pair) !== pair) add(pair.slice(eq + 1));
    }
  }
  return [...secrets].filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
}

/** `text` with every credential of `endpoint` replaced by `***` (for messages that quote parts of it). */
export function scrubCredentials(text: string, endpoint: string): string {
  let out = text;
  for (const secret of secretsOf(endpoint)) out = out.split(secret).join('***');
  return out;
}

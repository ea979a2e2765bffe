/**
 * Where the tests find the real services they need, and what happens when one is missing.
 *
 * Defaults fit a developer machine (PostgreSQL and MariaDB on loopback, Debian's etcd on PATH). A test whose
 * service is missing is skipped with a message saying how to enable it, unless HARIKUBE_TEST_REQUIRE_ALL=1
 * (set by `.ci/run`), in which case it fails: CI always runs everything.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { randomBytes } from 'node:crypto';

export const REQUIRE_ALL = process.env.HARIKUBE_TEST_REQUIRE_ALL === '1';

/** Server-level PostgreSQL URL (tests create and drop their own databases through it). */
export const POSTGRES_URL = process.env.HARIKUBE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
/** Server-level MySQL/MariaDB URL in the topology's endpoint form. */
export const MYSQL_URL = process.env.HARIKUBE_TEST_MYSQL_URL ?? 'mysql://root@tcp(127.0.0.1:3306)/test';
/** The etcd server binary (Debian: `apt-get install etcd-server`). */
export const ETCD_BIN = process.env.HARIKUBE_TEST_ETCD_BIN ?? 'etcd';
/** The etcdctl binary (Debian: `apt-get install etcd-client`). */
export const ETCDCTL_BIN = process.env.HARIKUBE_TEST_ETCDCTL_BIN ?? 'etcdctl';

export type Service = 'postgres' | 'mysql' | 'etcd' | 'etcdctl' | 'openssl';

const HOW_TO_ENABLE: Record<Service, string> = {
  postgres: `start PostgreSQL on 127.0.0.1:5432 or set HARIKUBE_TEST_POSTGRES_URL (now ${POSTGRES_URL})`,
  mysql: `start MariaDB/MySQL on 127.0.0.1:3306 or set HARIKUBE_TEST_MYSQL_URL (now ${MYSQL_URL})`,
  etcd: `apt-get install etcd-server, or set HARIKUBE_TEST_ETCD_BIN`,
  etcdctl: `apt-get install etcd-client, or set HARIKUBE_TEST_ETCDCTL_BIN`,
  openssl: 'apt-get install openssl (tests issue their TLS certificates with it)',
};

function hostPortOf(service: 'postgres' | 'mysql'): { host: string; port: number } {
  if (service === 'postgres') {
    const u = new URL(POSTGRES_URL);
    return { host: u.hostname, port: Number(u.port || 5432) };
  }
  const m = /@tcp\(([^:)]+):?(\d*)\)/.exec(MYSQL_URL) ?? /@([^:/]+):?(\d*)\//.exec(MYSQL_URL);
  return { host: m?.[1] ?? '127.0.0.1', port: Number(m?.[2] || 3306) };
}

function tcpReachable(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

function binaryRuns(bin: string, versionArg = '--version'): boolean {
  try {
    execFileSync(bin, [versionArg], { stdio: 'ignore', env: { ...process.env, ETCDCTL_API: '3' } });
    return true;
  } catch {
    return false;
  }
}

const cache = new Map<Service, Promise<boolean>>();

export function isAvailable(service: Service): Promise<boolean> {
  let p = cache.get(service);
  if (!p) {
    if (service === 'etcd') p = Promise.resolve(binaryRuns(ETCD_BIN));
    else if (service === 'etcdctl') p = Promise.resolve(binaryRuns(ETCDCTL_BIN, 'version'));
    else if (service === 'openssl') p = Promise.resolve(binaryRuns('openssl', 'version'));
    else {
      const { host, port } = hostPortOf(service);
      p = tcpReachable(host, port);
    }
    cache.set(service, p);
  }
  return p;
}

/**
 * For `test(name, { skip: await skipUnless('postgres') }, ...)`: false when the service is there, a message
 * saying how to enable it when not. Throws under HARIKUBE_TEST_REQUIRE_ALL=1 so CI fails instead of skipping.
 */
export async function skipUnless(...services: Service[]): Promise<string | false> {
  for (const s of services) {
    if (await isAvailable(s)) continue;
    const msg = `${s} is not available: ${HOW_TO_ENABLE[s]}`;
    if (REQUIRE_ALL) throw new Error(`HARIKUBE_TEST_REQUIRE_ALL=1 but ${msg}`);
    return msg;
  }
  return false;
}

/** A database name unique to this test run (tests create it and drop it when done). */
export function uniqueDatabaseName(prefix = 'hk_test'): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** Endpoint for a fresh PostgreSQL database called `db` on the test server. */
export function postgresEndpoint(db: string): string {
  const u = new URL(POSTGRES_URL);
  u.pathname = `/${db}`;
  return u.toString();
}

/** Endpoint for a fresh MySQL/MariaDB database called `db` on the test server. */
export function mysqlEndpoint(db: string): string {
  return MYSQL_URL.replace(/\/[^/?]*(\?.*)?$/, `/${db}$1`).replace('$1', '');
}

/** Ports freePort() handed out in this process: never handed out twice, even after their server stopped. */
const handedOut = new Set<number>();

/**
 * The ports freePort() picks from: below the kernel's ephemeral range, so no outgoing connection (to a
 * database, an etcd, a child middleware) can take a port between freePort() returning it and the server
 * binding it, and so two calls in a row cannot get the same port back from bind(0).
 */
function portRange(): [number, number] {
  let low = 32768;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
  } catch {
    // not Linux: keep the IANA default's start
  }
  return [Math.min(15_000, low - 4_000), low - 1];
}
const PORT_RANGE = portRange();

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A TCP port on 127.0.0.1 that nothing listens on and this process has not handed out before. */
export async function freePort(): Promise<number> {
  const [low, high] = PORT_RANGE;
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    if (handedOut.has(port) || !(await canBind(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port on 127.0.0.1 in ${low}-${high} after 200 tries: is something holding that range?`);
}

/**
 * What CloudNativePG does for a `Cluster`, done with a real PostgreSQL server, so that a middleware whose
 * topology names `<cluster>-rw.<namespace>.svc:5432` really stores its keys there:
 *
 * - one PostgreSQL server per Cluster (initdb + postgres from this machine's PostgreSQL, run as the OS user
 *   `postgres` when the tests run as root), listening on an address of its own in 127.0.0.0/8 at port 5432,
 *   the port of the Cluster's Service; data in a temp dir, removed at stop();
 * - the owner role with the password from the Cluster's bootstrap Secret (`spec.bootstrap.initdb.secret`),
 *   checked with scram-sha-256 over TCP (a wrong password is refused, as by the real instance), and the
 *   bootstrap database it owns; a `Database` resource of the Cluster becomes a database of its owner;
 * - the Services' names: `<cluster>-rw`, `-ro` and `-r` in `<namespace>.svc` map to that address in a JSON
 *   file (`dnsFile`) that the cluster DNS stand-in (cluster-dns.ts) of a locally run pod reads.
 *
 * ClusterStandIn reports a Cluster Ready and a Database applied only once `ensure` says it is done. A Cluster
 * that is deleted has its server stopped (its data goes, as with CloudNativePG's volumes). Not done: replicas,
 * password rotation, `Database` deletion (the platform's Databases are retained anyway).
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { ServerProcess } from '../support/child.js';
import { REQUIRE_ALL } from '../support/env.js';
import { kubeRequest, type KubeAccess } from '../support/kube-request.js';

const run = promisify(execFile);
const PG_PORT = 5432;

type Obj = { metadata: { name: string; namespace?: string }; spec?: any };

/** PostgreSQL's server binaries: HARIKUBE_TEST_PG_BINDIR, the initdb on PATH, or Debian's newest. */
function pgBinDir(): string | undefined {
  const candidates: string[] = [];
  if (process.env.HARIKUBE_TEST_PG_BINDIR) candidates.push(process.env.HARIKUBE_TEST_PG_BINDIR);
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) if (dir) candidates.push(dir);
  try {
    const versions = execFileSync('ls', ['/usr/lib/postgresql'], { encoding: 'utf8' }).split('\n').filter(Boolean).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(`/usr/lib/postgresql/${v}/bin`);
  } catch {
    /* no Debian PostgreSQL */
  }
  return candidates.find((d) => existsSync(path.join(d, 'initdb')) && existsSync(path.join(d, 'postgres')));
}

/** The uid/gid to run PostgreSQL as: ours, or the `postgres` user's when we are root (initdb refuses root). */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return { uid: process.getuid!(), gid: process.getgid!() };
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : undefined;
  } catch {
    return undefined;
  }
}

/** Skip message (false when it can run): needs initdb and postgres, and a non-root user to run them as. */
export function cnpgStandInSkip(): string | false {
  let why: string | undefined;
  if (!pgBinDir()) why = 'the CloudNativePG stand-in runs real PostgreSQL servers, and initdb/postgres were not found: apt-get install postgresql, or set HARIKUBE_TEST_PG_BINDIR';
  else if (!serverUser()) why = 'the CloudNativePG stand-in runs PostgreSQL as the OS user "postgres" when the tests run as root, and there is no such user (apt-get install postgresql creates it)';
  if (!why) return false;
  if (REQUIRE_ALL) throw new Error(`HARIKUBE_TEST_REQUIRE_ALL=1 but ${why}`);
  return why;
}

interface Instance {
  address: string;
  /** Also the server's unix socket directory (trust for the superuser: the stand-in's own connections). */
  dir: string;
  proc: ServerProcess;
  owner: string;
}

export class CnpgStandIn {
  /** Service host -> address, for cluster-dns.ts (HARIKUBE_TEST_CLUSTER_DNS). */
  readonly dnsFile: string;
  /** What it did, for failure messages. */
  readonly actions: string[] = [];
  private readonly root: string;
  private readonly bin: string;
  private readonly user: { uid: number; gid: number };
  private readonly instances = new Map<string, Instance>();
  private readonly dns: Record<string, string> = {};

  constructor(private readonly access: KubeAccess) {
    this.bin = pgBinDir()!;
    this.user = serverUser()!;
    this.root = mkdtempSync(path.join(os.tmpdir(), 'hk-cnpg-'));
    chownSync(this.root, this.user.uid, this.user.gid);
    this.dnsFile = path.join(this.root, 'cluster-dns.json');
    this.writeDns();
  }

  /** For ClusterStandIn: makes `o` (a CNPG Cluster or Database at API `path`) real; true once it is. */
  async ensure(apiPath: string, o: Obj): Promise<boolean> {
    if (apiPath.endsWith('/clusters')) return this.ensureCluster(o);
    if (apiPath.endsWith('/databases')) return this.ensureDatabase(o);
    return true;
  }

  /** Stops the servers of Clusters not in `present` (`namespace/name`). */
  async sweep(present: Set<string>): Promise<void> {
    for (const [key, inst] of this.instances) {
      if (present.has(key)) continue;
      this.instances.delete(key);
      const [ns, name] = key.split('/') as [string, string];
      for (const suffix of ['rw', 'ro', 'r']) delete this.dns[`${name}-${suffix}.${ns}.svc`];
      this.writeDns();
      await this.stopServer(inst);
      rmSync(inst.dir, { recursive: true, force: true });
      this.actions.push(`Cluster ${key}: server stopped (Cluster deleted)`);
    }
  }

  /** Distinct keys the middleware stored (its kv table) in database `database` of Cluster `namespace/cluster`. */
  async storedKeys(namespace: string, cluster: string, database: string): Promise<string[]> {
    const inst = this.instances.get(`${namespace}/${cluster}`);
    if (!inst) throw new Error(`no PostgreSQL server for Cluster ${namespace}/${cluster} (have ${[...this.instances.keys()].join(', ') || 'none'})`);
    return this.withSuperuser(inst, database, async (c) => {
      const res = await c.query<{ name: Buffer }>('SELECT DISTINCT name FROM kv ORDER BY name');
      return res.rows.map((r) => r.name.toString());
    });
  }

  async stop(): Promise<void> {
    for (const inst of this.instances.values()) await this.stopServer(inst);
    this.instances.clear();
    rmSync(this.root, { recursive: true, force: true });
  }

  private async ensureCluster(o: Obj): Promise<boolean> {
    const ns = o.metadata.namespace!;
    const key = `${ns}/${o.metadata.name}`;
    const initdb = o.spec?.bootstrap?.initdb ?? {};
    const secret = await kubeRequest(this.access, 'GET', `/api/v1/namespaces/${ns}/secrets/${initdb.secret?.name}`);
    if (secret.status !== 200) return false; // CloudNativePG waits for its bootstrap Secret too
    const field = (k: string) => Buffer.from(secret.body.data?.[k] ?? '', 'base64').toString('utf8');
    const owner: string = initdb.owner ?? 'app';
    if (field('username') !== owner) throw new Error(`Cluster ${key}: bootstrap Secret ${initdb.secret.name} is for user "${field('username')}", not the owner "${owner}"`);
    let inst = this.instances.get(key);
    if (!inst) {
      inst = await this.startServer(key, owner);
      this.instances.set(key, inst);
    }
    const database: string = initdb.database ?? 'app';
    await this.withSuperuser(inst, 'postgres', async (c) => {
      const role = await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [owner]);
      const verb = role.rowCount ? 'ALTER' : 'CREATE';
      await c.query(`${verb} ROLE ${c.escapeIdentifier(owner)} LOGIN PASSWORD ${c.escapeLiteral(field('password'))}`);
      await this.createDatabase(c, database, owner);
    });
    for (const suffix of ['rw', 'ro', 'r']) this.dns[`${o.metadata.name}-${suffix}.${ns}.svc`] = inst.address;
    this.writeDns();
    this.actions.push(`Cluster ${key}: PostgreSQL on ${inst.address}:${PG_PORT}, owner ${owner}, database ${database}`);
    return true;
  }

  private async ensureDatabase(o: Obj): Promise<boolean> {
    const key = `${o.metadata.namespace}/${o.spec?.cluster?.name}`;
    const inst = this.instances.get(key);
    if (!inst) return false; // its Cluster is not up yet
    await this.withSuperuser(inst, 'postgres', (c) => this.createDatabase(c, o.spec.name, o.spec.owner ?? inst.owner));
    this.actions.push(`Database ${o.metadata.namespace}/${o.metadata.name}: ${o.spec.name} in ${key}`);
    return true;
  }

  private async createDatabase(c: pg.Client, name: string, owner: string): Promise<void> {
    const exists = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (!exists.rowCount) await c.query(`CREATE DATABASE ${c.escapeIdentifier(name)} OWNER ${c.escapeIdentifier(owner)}`);
  }

  private async startServer(key: string, owner: string): Promise<Instance> {
    const dir = path.join(this.root, key.replace('/', '_'));
    mkdirSync(dir);
    chownSync(dir, this.user.uid, this.user.gid);
    const data = path.join(dir, 'data');
    const spawnAs = { uid: this.user.uid, gid: this.user.gid, env: { PATH: process.env.PATH ?? '', LANG: 'C' } };
    await run(path.join(this.bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync'], { ...spawnAs, timeout: 120_000 });
    const address = await freeLoopbackAddress();
    const proc = new ServerProcess(`PostgreSQL of Cluster ${key} on ${address}:${PG_PORT}`, path.join(this.bin, 'postgres'), [
      '-D', data,
      '-c', `listen_addresses=${address}`,
      '-c', `port=${PG_PORT}`,
      '-c', `unix_socket_directories=${dir}`,
      // a stand-in for a database pod in a test: durability is not under test here
      '-c', 'fsync=off',
      '-c', 'shared_buffers=16MB',
      '-c', 'max_connections=60',
    ], spawnAs);
    const inst: Instance = { address, dir, proc, owner };
    await proc.waitReady(`PostgreSQL of Cluster ${key} to accept connections`, () => this.withSuperuser(inst, 'postgres', async () => true), { timeoutMs: 60_000, intervalMs: 200 });
    return inst;
  }

  /** Fast shutdown (SIGINT: clients are disconnected; SIGTERM would wait for the middleware's pool). */
  private async stopServer(inst: Instance): Promise<void> {
    if (!inst.proc.running) return;
    inst.proc.child.kill('SIGINT');
    const timer = setTimeout(() => inst.proc.child.kill('SIGKILL'), 15_000);
    await inst.proc.exited;
    clearTimeout(timer);
  }

  private async withSuperuser<T>(inst: Instance, database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
    const c = new pg.Client({ host: inst.dir, port: PG_PORT, user: 'postgres', database });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  }

  private writeDns(): void {
    const tmp = `${this.dnsFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.dns, null, 2));
    renameSync(tmp, this.dnsFile);
  }
}

/** An address in 127.0.0.0/8 whose port 5432 is free (each server gets its own, as each Service its own IP). */
async function freeLoopbackAddress(): Promise<string> {
  for (let i = 0; i < 50; i++) {
    const address = `127.${randomInt(100, 200)}.${randomInt(0, 256)}.${randomInt(2, 255)}`;
    const free = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(PG_PORT, address, () => srv.close(() => resolve(true)));
    });
    if (free) return address;
  }
  throw new Error(`no free loopback address with port ${PG_PORT} found in 127.100.0.0-127.199.255.255 after 50 tries`);
}

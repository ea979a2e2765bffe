/**
 * The database goes away while clients write: clients get Unavailable (never a wrong answer), the
 * middleware recovers by itself when the database is back, no acknowledged write is lost, no revision is
 * handed out twice, and watchers see exactly what the database holds (including writes whose commit
 * outcome was unknown when the connection died). Once with PostgreSQL as the only backend, once with it
 * as a routed backend next to SQLite, where one write batch commits in both and only one of them fails.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { skipUnless, POSTGRES_URL } from '../support/env.js';
import { assertAckedWritesKept, type AckedWrites } from '../support/acked-writes.js';
import { createScratchStore } from '../support/scratch-store.js';
import { Middleware } from '../support/middleware.js';
import { status as Status } from '@grpc/grpc-js';
import { EtcdClient } from '../support/grpc.js';
import { parseEndpoint, type SqlServerEndpoint } from '../../middleware/src/topology/endpoint.js';

const WRITERS = 6;
const PUTS_PER_WRITER = 60;
const OUTAGES = 3;

const skip = await skipUnless('postgres');

interface Setup {
  /** The PostgreSQL database whose connections are killed. */
  database: string;
  middleware: Middleware;
  dispose(): Promise<void>;
}

/** PostgreSQL is the default backend. */
async function postgresOnly(): Promise<Setup> {
  const store = await createScratchStore('postgres');
  const middleware = await Middleware.start({ endpoint: store.endpoint, compactInterval: '0' }).catch(async (err) => {
    await store.dispose();
    throw err;
  });
  return { database: (parseEndpoint(store.endpoint) as SqlServerEndpoint).database, middleware, dispose: () => store.dispose() };
}

/** SQLite is the default backend; keys ending in an even digit are routed to PostgreSQL. */
async function routedToPostgres(): Promise<Setup> {
  const sqlite = await createScratchStore('sqlite');
  const postgres = await createScratchStore('postgres');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hk-outage-'));
  const dispose = async () => {
    await Promise.all([sqlite.dispose(), postgres.dispose()]);
    await rm(dir, { recursive: true, force: true });
  };
  const topology = path.join(dir, 'topology.yaml');
  await writeFile(topology, `backends:\n- name: even\n  endpoint: ${postgres.endpoint}\n  regexp: { key: "[02468]$" }\n`);
  const middleware = await Middleware.start({
    endpoint: sqlite.endpoint,
    compactInterval: '0',
    extraArgs: ['--topology-config', `file://${topology}`],
  }).catch(async (err) => {
    await dispose();
    throw err;
  });
  return { database: (parseEndpoint(postgres.endpoint) as SqlServerEndpoint).database, middleware, dispose };
}

for (const [title, setup] of [
  ['PostgreSQL connections killed mid-write', postgresOnly],
  ['PostgreSQL connections of a routed backend killed mid-write', routedToPostgres],
] as const) describe(title, { skip }, () => {
  let s: Setup;
  let mw: Middleware;
  let client: EtcdClient;
  let admin: pg.Client;
  let database: string;

  before(async () => {
    s = await setup();
    mw = s.middleware;
    database = s.database;
    client = new EtcdClient(mw.address);
    admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
  });

  after(async () => {
    client?.close();
    await admin?.end();
    await mw?.stop();
    await s?.dispose();
  });

  it('loses no acknowledged write, reuses no revision, and watchers match the database', async (t) => {
    const prefix = 'outage/';
    const start = BigInt((await client.range({ key: Buffer.from(prefix) })).header.revision);
    const watch = client.watch();
    const created = await watch.create({
      key: Buffer.from(prefix),
      range_end: Buffer.from('outage0'),
      start_revision: String(start + 1n),
      prev_kv: true,
    });

    const acked: AckedWrites = new Map();
    const failures: number[] = [];
    const writer = async (w: number) => {
      for (let i = 0; i < PUTS_PER_WRITER; i++) {
        const key = `${prefix}${w}/${i}`;
        const value = `v${w}-${i}`;
        try {
          const res = await client.put({ key: Buffer.from(key), value: Buffer.from(value) });
          acked.set(key, { value, revision: BigInt(res.header.revision) });
        } catch (err) {
          const code = (err as { code?: number }).code;
          assert.equal(code, Status.UNAVAILABLE, `a write during an outage fails with Unavailable, got ${String(err)}`);
          failures.push(code!);
        }
      }
    };
    const killer = async () => {
      for (let n = 0; n < OUTAGES; n++) {
        await new Promise((r) => setTimeout(r, 150));
        await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [
          database,
        ]);
      }
    };
    await Promise.all([...Array.from({ length: WRITERS }, (_, w) => writer(w)), killer()]);

    // recovered: a new write succeeds and its revision is above every one handed out before
    const final = await client.put({ key: Buffer.from(`${prefix}after`), value: Buffer.from('x') });
    const finalRev = BigInt(final.header.revision);
    const revisions = [...acked.values()].map((a) => a.revision);
    assert.equal(new Set(revisions).size, revisions.length, 'no two acknowledged writes share a revision');
    for (const r of revisions) assert.ok(r < finalRev, 'revisions continue above every earlier one');

    // every acknowledged write is stored, and the watcher saw exactly the stored puts, in revision order, each once
    const all = await assertAckedWritesKept(client, { key: Buffer.from(prefix), range_end: Buffer.from('outage0') }, acked, {
      stream: watch,
      id: created.watch_id,
    });
    watch.close();
    // how hard the outages hit this run (connections killed between queries are replaced silently)
    t.diagnostic(`acknowledged ${acked.size}, failed with Unavailable ${failures.length}, stored ${all.kvs.length}`);
  });
});

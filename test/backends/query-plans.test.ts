/**
 * Query plans at a million rows, on every dialect (../shared/design/FIELD-LESSONS.md, "Queries": peers
 * shipped MySQL list queries that sorted through temporary tables, and PostgreSQL prefix lists that read the
 * whole table, 12 s a list). The backend creates its real schema, the database fills it with 1M
 * Kubernetes-like rows (INSERT ... SELECT over generated numbers, no million round trips) and gathers
 * statistics as production would have them; then every statement the backends run on a hot path is
 * EXPLAINed with the parameters its caller passes. A plan must use the intended index and neither read a
 * whole table or index nor sort, unless its check says why it may. Plans only: timings prove nothing here.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import type { RangeQuery } from '../../middleware/src/backends/backend.js';
import { keyAfter } from '../../middleware/src/backends/key-range.js';
import { scanParams } from '../../middleware/src/backends/sql/compaction.js';
import { MysqlDriver, mysqlDialect } from '../../middleware/src/backends/sql/mysql.js';
import { PostgresDriver, postgresDialect } from '../../middleware/src/backends/sql/postgres.js';
import { sqliteDialect } from '../../middleware/src/backends/sql/sqlite-dialect.js';
import { CHUNK_ROWS, packedRangeSql } from '../../middleware/src/backends/sql/sqlite-pages.js';
import { Statements, rangeShape } from '../../middleware/src/backends/sql/statements.js';
import type { SqlRunner } from '../../middleware/src/backends/sql/write-connection.js';
import { parseEndpoint, type SqlServerEndpoint } from '../../middleware/src/topology/endpoint.js';
import { MYSQL_URL, POSTGRES_URL, skipUnless } from '../support/env.js';
import { STORES, type StoreHarness, type StoreKind } from './support/stores.js';

// ---- the data -------------------------------------------------------------------------------------------

/** KEYS keys written VERSIONS times each: one row per revision, revisions 1..ROWS. */
const KEYS = 100_000;
const VERSIONS = 10;
const ROWS = KEYS * VERSIONS;
const HEAD = ROWS;
/** A revision half-way: the pinned revision of a continued list, a read of the past. */
const OLD = ROWS / 2;
/** kube-apiserver compacts to the revision of a few minutes ago: here one round of writes back. */
const COMPACTED = HEAD - KEYS;
/**
 * Each round of writes touches every key once, in a scattered order (slot s writes key s * SCATTER mod
 * KEYS), so neighbouring revisions belong to unrelated keys, as in a cluster. UNSCATTER is its inverse.
 */
const SCATTER = 7919;
const UNSCATTER = 17_679;
/** Keys are numbered in key order: each resource holds a run of them, spread over NAMESPACES namespaces. */
const RESOURCES: readonly [string, number][] = [
  ['configmaps', 20_000],
  ['events', 20_000],
  ['leases', 10_000],
  ['pods', 30_000],
  ['secrets', 10_000],
  ['services/specs', 10_000],
];
const NAMESPACES = 100;
/** Events carry one of LEASES leases (kube-apiserver's event TTL). */
const LEASES = 10_000;
/** The last row of every TOMBSTONE_EVERY-th key is a delete. */
const TOMBSTONE_EVERY = 50;

const RUNS = RESOURCES.map(([name, n], i) => ({ name, n, lo: RESOURCES.slice(0, i).reduce((sum, [, m]) => sum + m, 0) }));

const pad = (n: number, width: number) => String(n).padStart(width, '0');
const b = (s: string) => Buffer.from(s);

/** Key k as the fill SQL spells it. */
function keyName(k: number): Buffer {
  const run = RUNS.find((r) => k < r.lo + r.n)!;
  return b(`/registry/${run.name}/ns-${pad(Math.floor(((k - run.lo) * NAMESPACES) / run.n), 2)}/obj-${pad(k, 6)}`);
}

/** Revision of version j (0-based) of key k. */
const revisionOf = (k: number, j: number) => j * KEYS + ((k * UNSCATTER) % KEYS) + 1;

/** The range end of a prefix: its last byte plus one (no prefix here ends in 0xff). */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  end[end.length - 1]!++;
  return end;
}

/** What the fill's SQL needs that the dialects spell differently. */
interface Spelling {
  /** Integers `i` from 0 to n - 1: a WITH clause to put first (or '') and a FROM item. */
  numbers(n: number): { with: string; from: string };
  div(a: string, b: string | number): string;
  /** Decimal digits of `x`, zero-padded to `width`. */
  padded(x: string, width: number): string;
  concat(parts: string[]): string;
  /** Text as key or value bytes. */
  bytes(text: string): string;
  /** `n` repetitions of 'v'. */
  filler(n: string): string;
}

const SPELLING: Record<StoreKind, Spelling> = {
  sqlite: {
    numbers: (n) => ({ with: `WITH RECURSIVE numbers(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM numbers WHERE i < ${n - 1}) `, from: 'numbers' }),
    div: (a, d) => `(${a}) / ${d}`,
    padded: (x, w) => `printf('%0${w}d', ${x})`,
    concat: (parts) => parts.join(' || '),
    bytes: (t) => `CAST(${t} AS BLOB)`,
    filler: (n) => `printf('%.*c', ${n}, 'v')`,
  },
  postgres: {
    numbers: (n) => ({ with: '', from: `generate_series(0, ${n - 1}) AS numbers(i)` }),
    div: (a, d) => `(${a}) / ${d}`,
    padded: (x, w) => `lpad((${x})::text, ${w}, '0')`,
    concat: (parts) => parts.join(' || '),
    bytes: (t) => `convert_to(${t}, 'UTF8')`,
    filler: (n) => `repeat('v', ${n})`,
  },
  mysql: {
    // the SEQUENCE engine's virtual table
    numbers: (n) => ({ with: '', from: `(SELECT seq AS i FROM seq_0_to_${n - 1}) AS numbers` }),
    div: (a, d) => `(${a}) DIV ${d}`,
    padded: (x, w) => `LPAD(${x}, ${w}, '0')`,
    concat: (parts) => `CONCAT(${parts.join(', ')})`,
    bytes: (t) => t,
    filler: (n) => `REPEAT('v', ${n})`,
  },
};

/**
 * The fill: ROWS rows of `kv` and LEASES leases, by INSERT ... SELECT in the database. Rows go in revision
 * order, as production writes them (PostgreSQL's heap order feeds its cost estimates), except on InnoDB,
 * which stores rows in primary key order whatever the insert order: key order makes its fill sequential
 * (in revision order it took six times as long).
 * Values are small (100-240 bytes): a smaller table makes full scans look cheaper to the planners, the
 * harder case for the indexes.
 */
function fillStatements(kind: StoreKind): string[] {
  const s = SPELLING[kind];
  const byRun = (value: (r: (typeof RUNS)[number]) => string) => `CASE ${RUNS.map((r) => `WHEN k < ${r.lo + r.n} THEN ${value(r)}`).join(' ')} END`;
  const order =
    kind === 'mysql'
      ? { k: s.div('i', VERSIONS), j: `i % ${VERSIONS}`, slot: `(${s.div('i', VERSIONS)}) * ${UNSCATTER} % ${KEYS}` }
      : { k: `(i % ${KEYS}) * ${SCATTER} % ${KEYS}`, j: s.div('i', KEYS), slot: `i % ${KEYS}` };
  const name = s.bytes(s.concat([`'/registry/'`, 'res', `'/ns-'`, s.padded(s.div(`(k - lo) * ${NAMESPACES}`, 'n'), 2), `'/obj-'`, s.padded('k', 6)]));
  const rows = s.numbers(ROWS);
  const leases = s.numbers(LEASES);
  return [
    `${rows.with}INSERT INTO kv (rev, sub, name, create_rev, prev_rev, version, lease, deleted, value) ` +
      `SELECT rev, 0, ${name}, slot + 1, CASE WHEN j = 0 THEN 0 ELSE rev - ${KEYS} END, CASE WHEN tomb = 1 THEN 0 ELSE j + 1 END, ` +
      `CASE WHEN res = 'events' THEN 1 + k % ${LEASES} ELSE 0 END, tomb, ` +
      `CASE WHEN tomb = 1 THEN ${s.bytes("''")} ELSE ${s.bytes(s.filler(`100 + k % 8 * 20`))} END ` +
      `FROM (SELECT k, j, slot, j * ${KEYS} + slot + 1 AS rev, ${byRun((r) => `'${r.name}'`)} AS res, ${byRun((r) => String(r.lo))} AS lo, ` +
      `${byRun((r) => String(r.n))} AS n, CASE WHEN j = ${VERSIONS - 1} AND k % ${TOMBSTONE_EVERY} = 17 THEN 1 ELSE 0 END AS tomb ` +
      `FROM (SELECT ${order.k} AS k, ${order.j} AS j, ${order.slot} AS slot FROM ${rows.from}) AS g) AS r`,
    `${leases.with}INSERT INTO leases (id, ttl, expires_at) SELECT i + 1, 3600, 1800000000000 + i FROM ${leases.from}`,
  ];
}

// ---- plans ----------------------------------------------------------------------------------------------

/** The indexes a check may ask for, named by table and key columns. */
type IndexKey = 'kv(name, rev)' | 'kv(rev, sub)' | 'leases(id)';
/** An index a plan must use, or a list of which it must use one. */
type Use = IndexKey | readonly IndexKey[];

/** Tables a plan must not read whole (meta holds a handful of rows). */
const BIG_TABLES = new Set(['kv', 'leases']);

/** One read of a table (or an index alone) in a plan. */
interface Access {
  table: string;
  index?: string;
  /** Reads the whole table or index rather than a range of it. */
  whole: boolean;
  step: string;
}

interface Plan {
  text: string;
  accesses: Access[];
  /** Sorts and temporary tables. */
  sorts: string[];
}

interface IndexInfo {
  table: string;
  name: string;
  /** Key columns, in order. */
  columns: string[];
  /** Set for the indexes checks ask for. */
  key?: IndexKey;
}

/** One statement a backend runs, with its caller's parameters and what its plan must (not) do. */
interface Check {
  what: string;
  sql: string;
  params: unknown[];
  uses: Use[];
  /** Why this statement may read a whole table or index, or sort. */
  allow?: { whole?: string; sort?: string };
}

/** Table of each name a statement reads `kv` or `leases` under (`FROM kv AS newer`). */
function tablesByAlias(sql: string): Map<string, string> {
  const aliases = new Map([...BIG_TABLES].map((t) => [t, t]));
  for (const m of sql.matchAll(/\b(kv|leases) AS (\w+)/g)) aliases.set(m[2]!, m[1]!);
  return aliases;
}

/** What is wrong with `plan` for `check`: one line per problem, none when it is fine. */
function problems(check: Check, plan: Plan, indexes: IndexInfo[]): string[] {
  const out: string[] = [];
  for (const a of plan.accesses) if (a.whole && BIG_TABLES.has(a.table) && !check.allow?.whole) out.push(`reads all of ${a.table}: ${a.step}`);
  if (!check.allow?.sort) for (const s of plan.sorts) out.push(`sorts: ${s}`);
  for (const use of check.uses) {
    const wanted = indexes.filter((i) => i.key !== undefined && (typeof use === 'string' ? [use] : use).includes(i.key));
    const used = (i: IndexInfo) => plan.accesses.some((a) => a.table === i.table && a.index === i.name);
    if (wanted.length === 0) out.push(`the index ${use} does not exist`);
    else if (!wanted.some(used)) out.push(`does not use the index ${wanted.map((i) => `${i.key} (${i.name})`).join(' or ')}`);
  }
  return out;
}

function showParams(params: unknown[]): string {
  const one = (p: unknown): string => (Buffer.isBuffer(p) ? JSON.stringify(p.toString('latin1')) : Array.isArray(p) ? `[${p.length} values]` : String(p));
  const shown = params.slice(0, 6).map(one).join(', ');
  return params.length > 6 ? `${shown}, ... (${params.length} in all)` : shown;
}

/** A dialect's database as the checks see it: its plans (under each planner setting checked) and indexes. */
interface PlanSource {
  fill(): Promise<void>;
  /** Gathers statistics as production has them. */
  analyze(): Promise<void>;
  /** The first column of the first row of `sql` (with `?` placeholders). */
  count(sql: string, params: unknown[]): Promise<number>;
  indexes(): Promise<IndexInfo[]>;
  explain(sql: string, params: unknown[], variant: string): Promise<Plan>;
  close(): Promise<void>;
}

const INDEX_KEYS: readonly IndexKey[] = ['kv(name, rev)', 'kv(rev, sub)', 'leases(id)'];

/** Names the indexes checks ask for by their table and columns. */
function named(list: Omit<IndexInfo, 'key'>[]): IndexInfo[] {
  return list.map((i) => ({ ...i, key: INDEX_KEYS.find((k) => k === `${i.table}(${i.columns.join(', ')})`) }));
}

/**
 * Runs `statements` in one transaction on the SQLite file in a worker thread: better-sqlite3 blocks its
 * thread, and the server databases fill meanwhile only if the event loop keeps talking to them.
 */
function sqliteInWorker(file: string, statements: string[]): Promise<void> {
  const source =
    "const { workerData: w } = require('node:worker_threads'); const db = new (require(w.driver))(w.file); " +
    // test data in a throwaway file: no fsync, and a cache that holds the indexes being built
    "db.pragma('synchronous = OFF'); db.pragma('cache_size = -1000000'); " +
    'db.transaction(() => w.statements.forEach((sql) => db.exec(sql)))(); db.close();';
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  return new Promise((resolve, reject) => {
    const worker = new Worker(source, { eval: true, workerData: { driver, file, statements } });
    worker.once('error', reject);
    worker.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`the SQLite fill worker exited with code ${code}`))));
  });
}

// SQLite: EXPLAIN QUERY PLAN rows, "SEARCH kv USING INDEX ... (name>? AND name<?)" or "SCAN kv".
class SqlitePlans implements PlanSource {
  private db?: Database.Database;

  constructor(private readonly file: string) {}

  async fill(): Promise<void> {
    await sqliteInWorker(this.file, fillStatements('sqlite'));
    this.db = new Database(this.file);
  }

  async analyze(): Promise<void> {
    this.open().exec('ANALYZE');
  }

  async count(sql: string, params: unknown[]): Promise<number> {
    return Number(Object.values(this.open().prepare(sql).get(...params) as object)[0]);
  }

  async indexes(): Promise<IndexInfo[]> {
    const db = this.open();
    const list = ['kv', 'leases'].flatMap((table) =>
      (db.prepare('SELECT name FROM pragma_index_list(?)').all(table) as { name: string }[]).map(({ name }) => ({
        table,
        name,
        columns: (db.prepare('SELECT name FROM pragma_index_info(?) ORDER BY seqno').all(name) as { name: string }[]).map((c) => c.name),
      })),
    );
    return named(list);
  }

  async explain(sql: string, params: unknown[]): Promise<Plan> {
    const rows = this.open().prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { id: number; parent: number; detail: string }[];
    const aliases = tablesByAlias(sql);
    const depth = new Map<number, number>([[0, 0]]);
    const plan: Plan = { text: '', accesses: [], sorts: [] };
    for (const r of rows) {
      depth.set(r.id, (depth.get(r.parent) ?? 0) + 1);
      plan.text += `${'  '.repeat(depth.get(r.id)!)}${r.detail}\n`;
      const m = /^(SCAN|SEARCH) (\S+)(?: USING (?:COVERING )?INDEX (\S+))?/.exec(r.detail);
      const table = m && aliases.get(m[2]!);
      // SCAN reads a whole table or index; a skip-scan, "(ANY(name) AND rev>?)", walks the whole index too
      if (table) plan.accesses.push({ table, index: m[3], whole: m[1] === 'SCAN' || r.detail.includes('(ANY('), step: r.detail });
      if (/USE TEMP B-TREE/.test(r.detail)) plan.sorts.push(r.detail);
    }
    return plan;
  }

  async close(): Promise<void> {
    this.db?.close();
  }

  private open(): Database.Database {
    assert.ok(this.db, 'the SQLite database was not filled');
    return this.db;
  }
}

interface PgNode {
  'Node Type': string;
  'Relation Name'?: string;
  Alias?: string;
  'Index Name'?: string;
  'Index Cond'?: string;
  'Recheck Cond'?: string;
  Filter?: string;
  'Sort Key'?: string[];
  'Join Type'?: string;
  Plans?: PgNode[];
}

// PostgreSQL: EXPLAIN (FORMAT JSON). Two plans per statement: the custom plan for the parameters given, and
// the generic plan, which a named prepared statement (as the backend sends every one) may switch to after
// five runs when its estimated cost is no worse.
class PostgresPlans implements PlanSource {
  private readonly client: pg.Client;
  /** Each index by name (a bitmap index scan names only its index). */
  private byName?: Map<string, IndexInfo>;

  constructor(endpoint: SqlServerEndpoint) {
    const { host, port, user, password, database } = endpoint;
    this.client = new pg.Client({ host, port, user, password, database });
  }

  async open(): Promise<this> {
    await this.client.connect();
    return this;
  }

  async fill(): Promise<void> {
    for (const sql of fillStatements('postgres')) await this.client.query(sql);
  }

  async analyze(): Promise<void> {
    // what autovacuum leaves after a bulk of inserts: statistics and the visibility map (index-only scans)
    await this.client.query('VACUUM ANALYZE kv, leases');
  }

  async count(sql: string, params: unknown[]): Promise<number> {
    return Number(Object.values((await this.client.query(postgresDialect.placeholders(sql), params)).rows[0] as object)[0]);
  }

  async indexes(): Promise<IndexInfo[]> {
    const rows = (await this.client.query("SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename IN ('kv', 'leases')")).rows as {
      tablename: string;
      indexname: string;
      indexdef: string;
    }[];
    // "CREATE UNIQUE INDEX kv_name_rev ON public.kv USING btree (name, rev) INCLUDE (deleted)": the key columns
    return named(rows.map((r) => ({ table: r.tablename, name: r.indexname, columns: (/USING \w+ \(([^)]*)\)/.exec(r.indexdef)?.[1] ?? '').split(', ') })));
  }

  async explain(sql: string, params: unknown[], variant: string): Promise<Plan> {
    let root: PgNode;
    if (variant === 'generic') {
      const n = Math.max(0, ...[...sql.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
      await this.client.query(`PREPARE hk_plan AS ${sql}`);
      try {
        await this.client.query('SET plan_cache_mode = force_generic_plan');
        // a generic plan is made without the values: NULL stands for each
        root = await this.planOf(`EXPLAIN (FORMAT JSON) EXECUTE hk_plan${n > 0 ? `(${Array(n).fill('NULL').join(', ')})` : ''}`, []);
      } finally {
        await this.client.query('RESET plan_cache_mode');
        await this.client.query('DEALLOCATE hk_plan');
      }
    } else {
      root = await this.planOf(`EXPLAIN (FORMAT JSON) ${sql}`, params);
    }
    this.byName ??= new Map((await this.indexes()).map((i) => [i.name, i]));
    const byName = this.byName;
    const plan: Plan = { text: '', accesses: [], sorts: [] };
    const walk = (node: PgNode, depth: number) => {
      const type = node['Node Type'];
      const on = node['Relation Name'] ? ` on ${node['Relation Name']}${node.Alias !== node['Relation Name'] ? ` ${node.Alias}` : ''}` : '';
      const using = node['Index Name'] ? ` using ${node['Index Name']}` : '';
      const conds = (['Index Cond', 'Recheck Cond', 'Filter'] as const).filter((c) => node[c]).map((c) => ` [${c}: ${node[c]}]`).join('');
      const step = `${type}${node['Join Type'] ? ` ${node['Join Type']}` : ''}${using}${on}${node['Sort Key'] ? ` by ${node['Sort Key'].join(', ')}` : ''}${conds}`;
      plan.text += `${'  '.repeat(depth)}${step}\n`;
      const index = node['Index Name'] ? byName.get(node['Index Name']) : undefined;
      const table = node['Relation Name'] ?? index?.table;
      if (table && /Scan$/.test(type) && type !== 'Bitmap Heap Scan') {
        // an index scan reads a range only when its condition bounds the first key column (else it walks it all)
        const bounded = index !== undefined && new RegExp(`\\(${index.columns[0]} (=|<|>|IS NOT NULL)`).test(node['Index Cond'] ?? '');
        plan.accesses.push({ table, index: node['Index Name'], whole: !bounded, step });
      }
      if (/Sort$/.test(type)) plan.sorts.push(step);
      for (const child of node.Plans ?? []) walk(child, depth + 1);
    };
    walk(root, 1);
    return plan;
  }

  private async planOf(sql: string, params: unknown[]): Promise<PgNode> {
    const row = (await this.client.query(sql, params)).rows[0] as { 'QUERY PLAN': { Plan: PgNode }[] };
    return row['QUERY PLAN'][0]!.Plan;
  }

  async close(): Promise<void> {
    await this.client.end();
  }
}

interface MysqlExplainRow {
  id: number | null;
  select_type: string;
  table: string | null;
  type: string | null;
  key: string | null;
  rows: number | string | null;
  Extra: string | null;
}

// MariaDB: tabular EXPLAIN of the statement prepared as the backend prepares it, each table's access type
// ("range", "ref", "ALL" for a full scan, "index" for a whole-index walk) and key, and Extra ("Using filesort").
class MysqlPlans implements PlanSource {
  private conn?: mysql.Connection;

  constructor(private readonly endpoint: SqlServerEndpoint) {}

  async open(): Promise<this> {
    const { host, port, user, password, database } = this.endpoint;
    this.conn = await mysql.createConnection({ host, port, user, password, database, supportBigNumbers: true, bigNumberStrings: true });
    return this;
  }

  async fill(): Promise<void> {
    for (const sql of fillStatements('mysql')) await this.conn!.query(sql);
  }

  async analyze(): Promise<void> {
    // InnoDB's persistent statistics, which it also recalculates by itself once a tenth of a table changed
    await this.conn!.query('ANALYZE TABLE kv, leases');
  }

  async count(sql: string, params: unknown[]): Promise<number> {
    const [rows] = await this.conn!.execute(sql, binds(params));
    return Number(Object.values((rows as object[])[0]!)[0]);
  }

  async indexes(): Promise<IndexInfo[]> {
    const [rows] = await this.conn!.query(
      "SELECT table_name AS t, index_name AS i, GROUP_CONCAT(column_name ORDER BY seq_in_index SEPARATOR ',') AS c FROM information_schema.statistics " +
        "WHERE table_schema = DATABASE() AND table_name IN ('kv', 'leases') GROUP BY table_name, index_name",
    );
    return named((rows as { t: string; i: string; c: string }[]).map((r) => ({ table: r.t, name: r.i, columns: r.c.split(',') })));
  }

  async explain(sql: string, params: unknown[]): Promise<Plan> {
    const [rows] = await this.conn!.execute(`EXPLAIN ${sql}`, binds(params));
    const aliases = tablesByAlias(sql);
    const plan: Plan = { text: '', accesses: [], sorts: [] };
    for (const r of rows as MysqlExplainRow[]) {
      const step = `${r.id ?? '-'} ${r.select_type} ${r.table ?? '-'} type=${r.type ?? '-'} key=${r.key ?? '-'} rows=${r.rows ?? '-'} ${r.Extra ?? ''}`.trim();
      plan.text += `  ${step}\n`;
      const table = r.table && aliases.get(r.table);
      if (table) plan.accesses.push({ table, index: r.key ?? undefined, whole: r.type === 'ALL' || r.type === 'index', step });
      if (/Using (filesort|temporary)/.test(r.Extra ?? '')) plan.sorts.push(step);
    }
    return plan;
  }

  async close(): Promise<void> {
    await this.conn?.end();
  }
}

/** Parameters as mysql.ts binds them: integers as decimal strings. */
const binds = (params: unknown[]) => params.map((p) => (typeof p === 'number' ? String(p) : p)) as (string | Buffer)[];

// ---- the statements -------------------------------------------------------------------------------------

/** The statement a driver method sends (its first, for batches that fit one), captured instead of run. */
async function sentBy(send: (c: SqlRunner) => Promise<unknown>): Promise<{ sql: string; params: unknown[] }> {
  const sent: { sql: string; params: unknown[] }[] = [];
  await send({
    query: async (sql, params) => (sent.push({ sql, params }), []),
    execute: async (sql, params) => (sent.push({ sql, params }), 0),
  });
  assert.ok(sent[0], 'the driver sent no statement');
  return sent[0];
}

const POD = 65_432;
const pod = keyName(POD);
const PODS = b('/registry/pods/');
const NAMESPACE = b('/registry/pods/ns-51/');
const SERVICES = b('/registry/services/');
/** Keys of a sample: every `step`-th key from `from`. */
const sample = (n: number, from: number, step: number) => Array.from({ length: n }, (_, i) => (from + i * step) % KEYS);

/**
 * Every statement the backends run on a hot path, and the migration's reads, with the parameters their callers
 * pass (backend.ts, mvcc/, server-store.ts, sqlite.ts and the drivers). Writes by value (inserts, meta and
 * lease upserts) are left out: their only read is the unique key check.
 */
async function checksFor(kind: StoreKind): Promise<Check[]> {
  const st = new Statements(DIALECTS[kind]);
  const NAME: IndexKey = 'kv(name, rev)';
  const REV: IndexKey = 'kv(rev, sub)';
  /** A snapshot range as the backend reads it: SQLite in packed chunks of at most CHUNK_ROWS keys (sqlite-pages.ts). */
  const range = (q: RangeQuery) => {
    const shape = kind === 'sqlite' ? { ...rangeShape(q), limited: true } : rangeShape(q);
    if (kind !== 'sqlite') return { sql: st.range(shape), params: st.rangeParams(q, shape) };
    const limit = q.limit > 0 ? Math.min(CHUNK_ROWS, q.limit) : CHUNK_ROWS;
    return { sql: packedRangeSql(st.range(shape), shape.keysOnly), params: st.rangeParams({ ...q, limit }, shape) };
  };
  const withTombstones = (q: RangeQuery) => {
    const shape = rangeShape(q);
    return { sql: st.rangeWithTombstones(shape), params: st.rangeParams(q, shape) };
  };
  const count = (start: Buffer, end: Buffer, revision: number) => ({ sql: st.count(end.length > 0), params: st.countParams(start, end, revision) });
  const int64 = (decimal: string) => (kind === 'sqlite' ? BigInt(decimal) : decimal);
  const unlimited = 'an unlimited read returns the whole range: sorting what it returns costs about what reading it in key order does';

  const checks: Check[] = [
    // reads of one key (kube Get; a count of one key reads it keys-only)
    { what: 'get: one key at the head revision', sql: st.get(false), params: [pod, HEAD], uses: [NAME] },
    { what: 'get: one key at an old revision', sql: st.get(false), params: [pod, OLD], uses: [NAME] },
    { what: 'get keys-only: a count of one key', sql: st.get(true), params: [pod, HEAD], uses: [NAME] },
    { what: 'latest: the newest row of a key (write transaction)', sql: st.latest, params: [pod], uses: [NAME] },
    // lists: kube-apiserver asks for 500 keys and reads one more to know whether more follow
    { what: 'list page: a resource at the head revision, limit 501', ...range({ start: PODS, end: prefixEnd(PODS), revision: HEAD, limit: 501 }), uses: [NAME] },
    {
      what: 'list page continued: after a key, at the first page revision',
      ...range({ start: keyAfter(pod), end: prefixEnd(PODS), revision: OLD, limit: 501 }),
      uses: [NAME],
    },
    { what: 'list page keys-only', ...range({ start: PODS, end: prefixEnd(PODS), revision: HEAD, limit: 501, keysOnly: true }), uses: [NAME] },
    { what: 'list page to the end of the keyspace', ...range({ start: PODS, end: Buffer.alloc(0), revision: HEAD, limit: 501 }), uses: [NAME] },
    { what: 'list of one namespace, unlimited', ...range({ start: NAMESPACE, end: prefixEnd(NAMESPACE), revision: HEAD, limit: 0 }), uses: [NAME], allow: { sort: unlimited } },
    { what: 'list of a whole resource, unlimited', ...range({ start: PODS, end: prefixEnd(PODS), revision: HEAD, limit: 0 }), uses: [NAME], allow: { sort: unlimited } },
    // counts (a paged list's total)
    { what: 'count of a resource at the head revision', ...count(PODS, prefixEnd(PODS), HEAD), uses: [NAME] },
    { what: 'count of a namespace at an old revision', ...count(NAMESPACE, prefixEnd(NAMESPACE), OLD), uses: [NAME] },
    {
      what: 'count to the end of the keyspace',
      ...count(SERVICES, Buffer.alloc(0), HEAD),
      uses: kind === 'sqlite' ? [] : [NAME],
      // kube-apiserver counts prefixes only; SQLite cannot size an open-ended range without statistics
      allow:
        kind === 'sqlite'
          ? { whole: 'walks (rev, sub) for `rev <= ?`: every row costs a probe either way, measured within a fifth of the (name, rev) range at 1M rows' }
          : undefined,
    },
    // watch catch-up (watch-hub.ts: 1,000 rows at a time; a revision whole; a failed batch's revisions)
    { what: 'changes: watch catch-up from a recent revision, limit 1000', sql: st.changes(true), params: [HEAD - 4999, HEAD, 1000], uses: [REV] },
    { what: 'changes: watch catch-up from the first revision, limit 1000', sql: st.changes(true), params: [1, HEAD, 1000], uses: [REV] },
    { what: 'changes: one revision whole', sql: st.changes(true), params: [OLD, OLD, Number.MAX_SAFE_INTEGER], uses: [REV] },
    { what: 'changes: the revisions of a failed write batch', sql: st.changes(true), params: [HEAD - 63, HEAD, Number.MAX_SAFE_INTEGER], uses: [REV] },
    { what: 'changes: writes during a topology scan, unlimited', sql: st.changes(false), params: [HEAD - 999, HEAD], uses: [REV], allow: { sort: unlimited } },
    // MariaDB reads MAX off the end of an index while optimizing ("Select tables optimized away"), naming none
    { what: 'max revision', sql: st.maxRevision, params: [], uses: kind === 'mysql' ? [] : [REV] },
    // compaction (batches of 1,000; a walk starts at 0 after a restart) and revert
    { what: 'compaction scan: first batch', sql: st.compactScan, params: scanParams({ rev: 0, sub: -1 }, COMPACTED, 1000), uses: [REV] },
    { what: 'compaction scan: a batch mid-walk', sql: st.compactScan, params: scanParams({ rev: OLD, sub: 0 }, COMPACTED, 1000), uses: [REV] },
    { what: 'revert: the rows of the newest revisions', sql: st.revertRows, params: [HEAD - 1, HEAD], uses: [REV] },
    // leases
    { what: 'lease delete', sql: st.leaseDelete, params: [int64('4242')], uses: ['leases(id)'] },
    {
      what: 'leased keys',
      sql: st.leasedKeys,
      params: [],
      uses: [NAME],
      allow: { whole: 'startup only (schema.ts): every leased key, once', sort: 'startup only: in key order, once' },
    },
    // migration (router/, migration/: pages of 1,000 keys, 500 history rows, 500 keys per statement)
    {
      what: 'migration: topology scan page, tombstones included',
      ...withTombstones({ start: b('\0'), end: Buffer.alloc(0), revision: HEAD, limit: 1000, keysOnly: true }),
      uses: [NAME],
    },
    { what: 'migration: history page', sql: st.history(true), params: [PODS, prefixEnd(PODS), 500], uses: [NAME] },
    { what: 'migration: one key history', sql: st.keyHistory, params: [pod], uses: [NAME] },
    { what: 'migration: stored revisions of 500 keys', sql: st.keysRevisions(500), params: sample(500, 3, 197).map(keyName), uses: [NAME] },
    { what: 'migration: drop 500 keys', sql: st.dropKeys(500), params: [...sample(500, 5, 197).map(keyName), HEAD], uses: [NAME] },
  ];

  // compaction deletes the rows the scan's rows superseded: (name, prev_rev) of slots 0.. of round two
  const superseded = (n: number) => Array.from({ length: n }, (_, s) => ({ name: keyName((s * SCATTER) % KEYS), rev: s + 1 }));
  const gets = sample(16, 11, 6007).map((k) => ({ key: keyName(k), revision: HEAD }));
  const written = sample(64, 17, 1531).map(keyName);
  if (kind === 'sqlite') {
    const [d] = superseded(1);
    checks.push({ what: 'compaction delete of one row', sql: st.deleteRow, params: [d!.name, d!.rev], uses: [NAME] });
  } else {
    // the drivers' own batch statements; the driver never connects (the server URL only fills its config)
    const server = parseEndpoint(kind === 'postgres' ? POSTGRES_URL : MYSQL_URL) as SqlServerEndpoint;
    const driver = kind === 'postgres' ? new PostgresDriver(server, 'query plans', { queryTimeoutMs: 0 }) : new MysqlDriver(server, 'query plans', { queryTimeoutMs: 0 });
    checks.push(
      { what: 'gets of 16 keys in one statement (get-batcher.ts)', ...(await sentBy((c) => driver.getRows(c, gets))), uses: [NAME] },
      { what: 'newest rows of a write batch of 64 keys (prefetch)', ...(await sentBy((c) => driver.latestRows(c, written))), uses: [NAME] },
      // one probe per (name, rev) pair, by either unique key: a revision holds one row unless a transaction wrote several
      { what: 'compaction delete of a batch', ...(await sentBy((c) => driver.deleteRows(c, superseded(1000)))), uses: [[NAME, REV]] },
    );
  }
  return checks;
}

// ---- the suites -----------------------------------------------------------------------------------------

const DIALECTS = { sqlite: sqliteDialect, postgres: postgresDialect, mysql: mysqlDialect } as const;

async function planSource(store: StoreHarness): Promise<PlanSource> {
  if (store.kind === 'sqlite') return new SqlitePlans(store.name);
  const endpoint = parseEndpoint(store.endpoint) as SqlServerEndpoint;
  return store.kind === 'postgres' ? new PostgresPlans(endpoint).open() : new MysqlPlans(endpoint).open();
}

/** Planner settings each dialect is checked under, in order; `analyze`: gather statistics first. */
const VARIANTS: Record<StoreKind, { name: string; label: string; analyze: boolean }[]> = {
  // HariKube never runs ANALYZE on SQLite: its plans come from the schema alone, unless an operator ran it
  sqlite: [
    { name: 'plain', label: 'without statistics, as HariKube leaves SQLite', analyze: false },
    { name: 'analyzed', label: 'after ANALYZE', analyze: true },
  ],
  postgres: [
    { name: 'custom', label: 'custom plans', analyze: true },
    { name: 'generic', label: 'generic plans', analyze: false },
  ],
  mysql: [{ name: 'plain', label: 'InnoDB statistics', analyze: true }],
};

interface Prepared {
  store: StoreHarness;
  source: PlanSource;
  fillMs: number;
  indexes: IndexInfo[];
}

/** A fresh database of `kind` with the backend's own schema, filled. */
async function prepare(kind: StoreKind): Promise<Prepared> {
  const store = await STORES[kind]();
  let source: PlanSource | undefined;
  try {
    // the backend creates the schema and its indexes, as in production
    const backend = store.backend();
    await backend.open();
    await backend.close();
    source = await planSource(store);
    const started = Date.now();
    await source.fill();
    return { store, source, fillMs: Date.now() - started, indexes: await source.indexes() };
  } catch (err) {
    await source?.close().catch(() => undefined);
    await store.dispose().catch(() => undefined);
    throw err;
  }
}

function planSuite(kind: StoreKind, skip: string | false, checks: Check[], prepared: Promise<Prepared> | undefined): void {
  describe(`query plans at ${ROWS.toLocaleString('en')} rows: ${kind}`, { skip }, () => {
    let ready: Prepared | undefined;
    const db = () => {
      assert.ok(ready, 'the database was not filled');
      return ready.source;
    };

    before(async () => {
      ready = await prepared;
    });

    after(async () => {
      await ready?.source.close();
      await ready?.store.dispose();
    });

    test('the data has the intended shape', async (t) => {
      t.diagnostic(`filled ${ROWS} rows in ${ready?.fillMs} ms (side by side with the other dialects)`);
      assert.equal((SCATTER * UNSCATTER) % KEYS, 1, 'UNSCATTER is the inverse of SCATTER mod KEYS');
      assert.equal(await db().count('SELECT COUNT(*) FROM kv', []), ROWS);
      assert.equal(await db().count('SELECT COUNT(*) FROM kv WHERE deleted = 1', []), KEYS / TOMBSTONE_EVERY);
      assert.equal(await db().count('SELECT COUNT(*) FROM leases', []), LEASES);
      // keyName and revisionOf spell what the fill wrote
      assert.equal(await db().count('SELECT COUNT(*) FROM kv WHERE name = ?', [pod]), VERSIONS, `rows of ${pod}`);
      assert.equal(await db().count('SELECT MAX(rev) FROM kv WHERE name = ?', [pod]), revisionOf(POD, VERSIONS - 1));
      assert.deepEqual(ready!.indexes.map((i) => i.key ?? `${i.table}(${i.columns.join(', ')})`).sort(), INDEX_KEYS, 'the indexes of kv and leases');
    });

    for (const v of VARIANTS[kind]) {
      describe(v.label, () => {
        before(async () => {
          if (v.analyze) await db().analyze();
        });
        for (const c of checks) {
          test(c.what, async () => {
            const plan = await db().explain(c.sql, c.params, v.name);
            const wrong = problems(c, plan, ready!.indexes);
            assert.ok(
              wrong.length === 0,
              `${kind} (${v.label}): ${c.what}\n  ${wrong.join('\n  ')}\n` +
                `statement: ${c.sql.length > 600 ? `${c.sql.slice(0, 600)} ...` : c.sql}\nparameters: ${showParams(c.params)}\nplan:\n${plan.text}`,
            );
          });
        }
      });
    }
  });
}

/** Statements of statements.ts that no check EXPLAINs, and why. */
const NOT_CHECKED: Record<string, string> = {
  insertRow: 'a write by value: its only read is the unique key check',
  metaSet: 'a write by value',
  leasePut: 'a write by value',
  metaGet: 'meta holds a handful of rows',
  metaLock: 'meta holds a handful of rows',
  leaseList: 'startup only: every lease, once',
  deleteRow: 'checked on SQLite, the one backend that runs it (the servers delete a batch per statement, checked)',
};

const checksByKind = { sqlite: await checksFor('sqlite'), postgres: await checksFor('postgres'), mysql: await checksFor('mysql') };

test('every statement of statements.ts has a plan check or a reason not to', () => {
  for (const kind of ['sqlite', 'postgres', 'mysql'] as const) {
    const checked = new Set(checksByKind[kind].map((c) => c.sql));
    const fields = Object.entries(new Statements(DIALECTS[kind])).filter((e): e is [string, string] => typeof e[1] === 'string');
    const missing = fields.filter(([name, sql]) => !checked.has(sql) && !(name in NOT_CHECKED)).map(([name]) => name);
    assert.deepEqual(missing, [], `${kind}: add a check to checksFor for Statements.${missing.join(', ')} (or a reason to NOT_CHECKED)`);
  }
});

const skips: Record<StoreKind, string | false> = { sqlite: false, postgres: await skipUnless('postgres'), mysql: await skipUnless('mysql') };
for (const kind of ['sqlite', 'postgres', 'mysql'] as const) {
  // every fill starts now, side by side: each is its database's own work, and the suites run one at a time
  const prepared = skips[kind] ? undefined : prepare(kind);
  prepared?.catch(() => undefined); // its suite reports the failure
  planSuite(kind, skips[kind], checksByKind[kind], prepared);
}

/**
 * The check `harikube migrate verify` runs: every backend of the topology in effect (the default backend, every
 * rule's, and the retired ones a migration is still emptying) is scanned for keys living outside their owner -
 * keys with rows (their newest row counted, tombstones included) in a backend the topology does not route them
 * to. Databases the operator means to delete can be checked too: empty means safe to delete. Read-only: it
 * works beside a running middleware.
 */
import type { Backend, KeyRow } from '../backends/backend.js';
import { META } from '../backends/meta.js';
import { openBackend } from '../backends/index.js';
import { isMovable } from '../backends/movable.js';
import { keyAfter } from '../backends/key-range.js';
import { routeLabel } from '../migration/describe.js';
import type { RouteTable } from '../router/route-table.js';
import { location } from '../server/topology-applier.js';
import { parseEndpoint, redactEndpoint } from '../topology/endpoint.js';

const PAGE = 1000;
const ALL_START = Buffer.from([0]);
const TO_END = Buffer.alloc(0);

/** Keys one backend holds that another one owns. */
export interface MisplacedGroup {
  /** Where the keys are (`the default backend`, `rule "x"`, `the old database of rule "x"`). */
  backend: string;
  /** Its database, credentials redacted. */
  database: string;
  /** Who owns them by the topology in effect. */
  owner: string;
  count: number;
  /** How many of them are deleted keys (their newest row is a tombstone). */
  deleted: number;
  /** Smallest and largest key (UTF-8, as JSON strings would show them). */
  first: string;
  last: string;
}

export interface BackendSummary {
  backend: string;
  database: string;
  /** Keys with rows in it, deleted ones included. */
  keys: number;
  misplaced: number;
  /** A migration is moving keys out of it. */
  migrationSource: boolean;
}

/** A database given with --retired-endpoint: can it be deleted? */
export interface RetiredCheck {
  database: string;
  verdict: 'safe-to-delete' | 'holds-keys' | 'in-use' | 'migration-source' | 'missing';
  /** One sentence: why, and what to do. */
  detail: string;
  keys?: number;
}

export interface VerifyReport {
  /** Highest revision stored in any backend when the scan began. */
  revision: number;
  /** The middleware cluster whose data this is. */
  clusterId: string;
  backends: BackendSummary[];
  misplaced: MisplacedGroup[];
  /** Migration sources still being emptied (empty: no migration in progress). */
  migrating: { backend: string; database: string; since: number }[];
  retired: RetiredCheck[];
}

/** Every key of `b` (its newest row each, tombstones included where the backend can show them), a page at a time. */
async function eachPage(b: Backend, revision: number, visit: (rows: KeyRow[]) => void): Promise<void> {
  let start: Buffer = ALL_START;
  for (;;) {
    const q = { start, end: TO_END, revision, limit: PAGE, keysOnly: true };
    const rows = isMovable(b) ? await b.moves.rangeWithTombstones(q) : await b.range(q);
    if (rows.length) visit(rows);
    if (rows.length < PAGE) return;
    start = keyAfter(rows[rows.length - 1]!.key);
  }
}

/** The label of a backend of `t`: its route, or the old database of a removed rule. */
function labelOf(t: RouteTable, b: Backend): string {
  const rec = t.sources.get(b);
  if (t.retired.includes(b)) return rec?.rule ? `the old database of rule "${rec.rule.name}"` : 'a removed backend';
  return routeLabel(t.nameOf(b));
}

/** Scans every backend of `t` (opened, read-only use) for keys outside their owner. */
export async function verifyPlacement(t: RouteTable, revision: number, clusterId: string): Promise<VerifyReport> {
  const report: VerifyReport = { revision, clusterId, backends: [], misplaced: [], retired: [], migrating: [] };
  for (const [b, rec] of t.sources) report.migrating.push({ backend: labelOf(t, b), database: b.description, since: rec.since });
  for (const b of t.all()) {
    const here = labelOf(t, b);
    const groups = new Map<Backend, MisplacedGroup>();
    let keys = 0;
    let misplaced = 0;
    // an etcd backend numbers its own history: read it at the newest global revision stored, not beyond
    await eachPage(b, isMovable(b) ? Number.MAX_SAFE_INTEGER : revision, (rows) => {
      keys += rows.length;
      for (const row of rows) {
        const owner = t.ownerOf(row.key);
        if (owner === b) continue;
        misplaced++;
        const k = row.key.toString('utf8');
        const g = groups.get(owner);
        if (!g) {
          groups.set(owner, { backend: here, database: b.description, owner: labelOf(t, owner), count: 1, deleted: row.deleted ? 1 : 0, first: k, last: k });
        } else {
          g.count++;
          if (row.deleted) g.deleted++;
          // pages come in key order
          g.last = k;
        }
      }
    });
    report.backends.push({ backend: here, database: b.description, keys, misplaced, migrationSource: t.sources.has(b) });
    report.misplaced.push(...groups.values());
  }
  return report;
}

/**
 * Whether a database that no rule routes to any more (one the operator wants to delete) can go: it must not
 * be a backend of the topology in effect or a migration source, and it must hold no key at all.
 */
export async function checkRetired(
  t: RouteTable,
  defaultEndpoint: string,
  endpoint: string,
  clusterId: string,
  exists: (path: string) => boolean,
): Promise<RetiredCheck> {
  const database = redactEndpoint(endpoint);
  let where: string;
  try {
    const parsed = parseEndpoint(endpoint);
    if (parsed.kind === 'sqlite' && parsed.path !== ':memory:' && !exists(parsed.path)) {
      return { database, verdict: 'missing', detail: `there is no SQLite database at ${parsed.path} (deleted already, or a wrong path)` };
    }
    where = location(parsed);
  } catch (err) {
    return { database, verdict: 'missing', detail: `not an endpoint: ${(err as Error).message}` };
  }
  const ruleEndpoint = new Map<Backend, string>([[t.defaultBackend, defaultEndpoint]]);
  for (const r of t.document.backends) ruleEndpoint.set(t.backends.get(r.name)!, r.endpoint);
  for (const [b, rec] of t.sources) if (rec.rule) ruleEndpoint.set(b, rec.rule.endpoint);
  for (const b of t.all()) {
    const e = ruleEndpoint.get(b);
    if (e === undefined || safeLocation(e) !== where) continue;
    if (t.sources.has(b) && t.retired.includes(b)) {
      return { database, verdict: 'migration-source', detail: `keys are still moving out of it (${labelOf(t, b)}); wait until \`harikube migrate status\` says it is emptied` };
    }
    return { database, verdict: 'in-use', detail: `it is ${labelOf(t, b)} in the topology in effect: keys live there; do not delete it` };
  }
  const backend = openBackend(endpoint, { mustExist: true });
  try {
    await backend.open();
  } catch (err) {
    const msg = (err as Error).message;
    if (/does not exist/.test(msg)) return { database, verdict: 'missing', detail: `there is no such database (deleted already, or a wrong name): ${msg}` };
    return { database, verdict: 'missing', detail: `cannot open it: ${msg}` };
  }
  try {
    let keys = 0;
    let live = 0;
    await eachPage(backend, Number.MAX_SAFE_INTEGER, (rows) => {
      keys += rows.length;
      live += rows.filter((r) => !r.deleted).length;
    });
    const owner = (await backend.getMeta(META.owner))?.toString();
    const foreign = owner && owner !== clusterId ? ` It belongs to another HariKube cluster (id ${owner}), not this one (${clusterId}).` : '';
    if (keys === 0) {
      const what = owner ? 'it holds no keys' : 'it holds no HariKube data (no keys; no middleware ever claimed it)';
      return { database, verdict: 'safe-to-delete', keys, detail: `${what} and no rule routes to it: safe to delete.${foreign}` };
    }
    const how = foreign
      ? ''
      : ' To have them moved where the topology routes them, add a rule pointing at this database again (any match), wait for `harikube migrate status` to finish, then remove that rule and wait again.';
    return {
      database,
      verdict: 'holds-keys',
      keys,
      detail: `it still holds ${keys} keys (${live} live, ${keys - live} deleted) that no rule routes to it: do not delete it.${foreign}${how}`,
    };
  } finally {
    await backend.close();
  }
}

function safeLocation(endpoint: string): string | undefined {
  try {
    return location(parseEndpoint(endpoint));
  } catch {
    return undefined;
  }
}

/** The cluster ID in the default backend's meta store; undefined when it holds no HariKube data. */
export async function clusterIdOf(defaultBackend: Backend): Promise<string | undefined> {
  return (await defaultBackend.getMeta(META.clusterId))?.toString();
}

/**
 * `harikube migrate status` and `harikube migrate verify` against the real middleware process while a real
 * migration runs: a topology file routes a namespace's ConfigMaps out of the default SQLite backend, the
 * middleware's --migration-rate of 1 key/s holds the migration in progress (after a first batch) so the
 * commands can be asked mid-way; a topology that sets `migration.keysPerSecond: 0` then lifts the limit live
 * and the migration finishes. Then the rule is removed: its database is emptied back into the default
 * backend, `status` says it is safe to delete and `verify --retired-endpoint` agrees.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { formatSeconds } from '../../middleware/src/migration/describe.js';
import { b } from '../support/bytes.js';
import pg from 'pg';
import { freePort, POSTGRES_URL, postgresEndpoint, skipUnless, uniqueDatabaseName } from '../support/env.js';
import { EtcdClient } from '../support/grpc.js';
import { CLI_ARGS } from '../support/cli.js';
import { harikube } from '../support/harikube-cli.js';
import { Middleware, REPO_ROOT } from '../support/middleware.js';
import { keysIn } from '../support/routed.js';
import { waitUntil } from '../support/wait.js';



/** A running `harikube ARGS`, optionally on a pseudo-terminal (script(1)), with its output so far. */
function follow(args: string[], tty: boolean): { output: () => string; exited: Promise<number | null>; kill: () => void } {
  const command = [process.execPath, ...CLI_ARGS, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const child = tty
    ? spawn('script', ['-qec', `stty cols 160; ${command}`, '/dev/null'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, [...CLI_ARGS, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { output: () => out, exited, kill: () => child.kill('SIGKILL') };
}

interface SourceJson {
  source: string;
  phase: string;
  keysMoved: number;
  keysTotal: number;
  targets?: string[];
  rule?: string;
}

const pgSkip = await skipUnless('postgres');

describe('harikube migrate status and verify, with the real middleware', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hk-migrate-cli-'));
  const topology = path.join(dir, 'topology.yaml');
  const db = (name: string) => path.join(dir, `${name}.db`);
  const defaultEndpoint = `sqlite://${db('default')}`;
  const teamEndpoint = `sqlite://${db('team-a')}`;
  const moving = Array.from({ length: 1200 }, (_, i) => `/registry/configmaps/team-a/cm${String(i).padStart(4, '0')}`);
  const deleted = [moving[1150]!, moving[1190]!];
  const staying = Array.from({ length: 10 }, (_, i) => `/registry/configmaps/team-b/cm${i}`);
  let middleware: Middleware;
  let client: EtcdClient;
  const followers: Array<{ kill: () => void }> = [];

  function writeTopology(doc: unknown): void {
    writeFileSync(`${topology}.tmp`, stringify(doc));
    renameSync(`${topology}.tmp`, topology);
  }
  const status = async () => (await (await fetch(`http://${middleware.metricsAddress}/migrations`)).json()) as { active: boolean; rateLimit: number; rateLimitFrom: string; sources: SourceJson[] };
  const teamRule = { name: 'team-a', endpoint: teamEndpoint, namespace: { namespace: 'team-a' } };

  before(async () => {
    writeTopology({ backends: [] });
    middleware = await Middleware.start({ endpoint: defaultEndpoint, extraArgs: ['--topology-config', `file://${topology}`, '--migration-rate', '1'] });
    client = new EtcdClient(middleware.address);
    for (let i = 0; i < moving.length; i += 100) {
      await Promise.all(moving.slice(i, i + 100).map((key) => client.put({ key: b(key), value: b(`v-${key}`) })));
    }
    for (const key of staying) await client.put({ key: b(key), value: b('stays') });
    for (const key of deleted) await client.deleteRange({ key: b(key) });
  });

  after(async () => {
    for (const f of followers) f.kill();
    client?.close();
    await middleware?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('without a migration: status says none, verify finds every key in place', async () => {
    const st = await harikube(['migrate', 'status', '--metrics-address', middleware.metricsAddress]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /^No migration in progress/);
    const v = await harikube(['migrate', 'verify', '--endpoint', defaultEndpoint]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, new RegExp(`the default backend \\(${defaultEndpoint}\\): ${moving.length + staying.length} keys, all in place`));
    assert.match(v.stdout, /^OK: every key is in the backend the topology routes it to\.$/m);
  });

  it('a middleware that cannot be reached, or a database that does not exist, is a clear error', async () => {
    const port = await freePort();
    const st = await harikube(['migrate', 'status', '--metrics-address', `127.0.0.1:${port}`]);
    assert.equal(st.code, 1);
    assert.match(st.stderr, new RegExp(`cannot reach the middleware at http://127\\.0\\.0\\.1:${port}/migrations: ECONNREFUSED\\. Is \`harikube serve\` running there.*--metrics-address`));
    const usage = await harikube(['migrate', 'status', '--metrics-address', 'nonsense']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--metrics-address "nonsense": expected host:port/);
    const missing = await harikube(['migrate', 'verify', '--endpoint', `sqlite://${db('typo')}`]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /there is no SQLite database at .*typo\.db; pass the middleware's own --endpoint/);
    assert.throws(() => keysIn(db('typo')), /unable to open|does not exist|SQLITE_CANTOPEN/i, 'verify must not create the database it was pointed at');
  });

  it('verify does not create a missing PostgreSQL database it is asked about', { skip: pgSkip }, async () => {
    const name = uniqueDatabaseName('hk_migcli');
    const gone = await harikube(['migrate', 'verify', '--endpoint', defaultEndpoint, '--retired-endpoint', postgresEndpoint(name)]);
    assert.equal(gone.code, 1, gone.stdout + gone.stderr);
    assert.match(gone.stdout, new RegExp(`there is no such database \\(deleted already, or a wrong name\\): .*database "${name}" does not exist`));
    const admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    try {
      assert.equal((await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount, 0, 'verify created the database it checked');
    } finally {
      await admin.end();
    }
  });

  it('mid-migration: status shows the source, its progress and rate; verify lists the keys not moved yet and fails', async () => {
    writeTopology({ backends: [teamRule] });
    const mid = await waitUntil('a first batch moved, the rest held by the rate limit', async () => {
      const s = await status();
      const src = s.sources[0];
      return src && src.phase === 'moving' && src.keysMoved > 0 ? s : undefined;
    }, { timeoutMs: 60_000 });
    assert.equal(mid.active, true);
    assert.deepEqual([mid.rateLimit, mid.rateLimitFrom], [1, 'flag']);
    const src = mid.sources[0]!;
    assert.deepEqual([src.source, src.targets, src.keysTotal], ['', ['team-a'], moving.length]);
    assert.ok(src.keysMoved < src.keysTotal, `held by the rate limit: ${src.keysMoved} of ${src.keysTotal}`);

    const plain = await harikube(['migrate', 'status', '--metrics-address', middleware.metricsAddress]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /^Migration in progress: 1 source still holds keys routed elsewhere; rate limit 1 keys\/s \(--migration-rate\)\.$/m);
    // the rate shown is the limit's; the time left follows from it (keys keep moving, one a second)
    const shown = new RegExp(`^  the default backend \\(${defaultEndpoint}\\) -> rule "team-a": moving, (\\d+) of ${moving.length} keys \\(\\d+%\\), 1 keys/s, ETA (\\S+)$`, 'm').exec(plain.stdout);
    assert.ok(shown, plain.stdout);
    assert.ok(Number(shown[1]) >= src.keysMoved && Number(shown[1]) < moving.length, plain.stdout);
    assert.equal(shown[2], formatSeconds(moving.length - Number(shown[1])));
    assert.doesNotMatch(plain.stdout, /\x1b\[|\[#+/, 'no terminal codes or bars in plain output');

    const json = await harikube(['migrate', 'status', '--metrics-address', `http://${middleware.metricsAddress}`, '--output', 'json']);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(JSON.parse(json.stdout).sources[0].keysTotal, moving.length);

    const tty = follow(['migrate', 'status', '--metrics-address', middleware.metricsAddress], true);
    assert.equal(await tty.exited, 0, tty.output());
    assert.match(tty.output(), /\[#*-+\]\s+\d+%\s+\d+\/1200 keys\s+moving/, 'a progress bar on a terminal');

    // what the default database still holds for team-a, read from the file itself; keys keep moving (a batch
    // of one key a second at this limit), so verify's count lies between a read before and one after it
    const teamA = () => keysIn(db('default')).filter((k) => k.startsWith('/registry/configmaps/team-a/'));
    const before = teamA();
    assert.ok(before.length > 0 && before.length < moving.length);
    const v = await harikube(['migrate', 'verify', '--endpoint', defaultEndpoint]);
    const after = teamA();
    assert.equal(v.code, 1, v.stdout + v.stderr);
    assert.match(v.stdout, /^A migration is in progress: keys are still moving out of the default backend/m);
    const line = new RegExp(`^  the default backend \\(${defaultEndpoint}\\) holds (\\d+) keys that rule "team-a" owns( \\(\\d of them deleted, their history still there\\))?: "([^"]+)" \\.\\. "${before.at(-1)}"$`, 'm').exec(v.stdout);
    assert.ok(line, v.stdout);
    const n = Number(line[1]);
    assert.ok(after.length <= n && n <= before.length, `verify counted ${n}; the file held ${before.length} before and ${after.length} after`);
    assert.ok(before.includes(line[3]!) && after.every((k) => k >= line[3]!), `first key listed: ${line[3]}`);
    assert.match(v.stdout, new RegExp(`^NOT OK: ${n} keys live outside the backend the topology routes them to \\(the migration in progress moves them\\)\\.$`, 'm'));
    const vj = JSON.parse((await harikube(['migrate', 'verify', '--endpoint', defaultEndpoint, '--output', 'json'])).stdout);
    const later = teamA();
    assert.deepEqual(vj.misplaced.map((g: any) => [g.backend, g.owner]), [['the default backend', 'rule "team-a"']]);
    assert.ok(later.length <= vj.misplaced[0].count && vj.misplaced[0].count <= after.length, `verify --output json counted ${vj.misplaced[0].count}`);
  });

  it('--watch follows until the migration is done; a topology migration.keysPerSecond overrides the flag live', async () => {
    const plain = follow(['migrate', 'status', '--metrics-address', middleware.metricsAddress, '--watch', '--interval', '200ms'], false);
    const tty = follow(['migrate', 'status', '--metrics-address', middleware.metricsAddress, '--watch', '--interval', '200ms'], true);
    followers.push(plain, tty);
    await waitUntil('both followers to show the migration', () => (/Migration in progress/.test(plain.output()) && /Migration in progress/.test(tty.output()) ? true : undefined), { timeoutMs: 60_000 });
    writeTopology({ backends: [teamRule], migration: { keysPerSecond: 0 } });
    assert.equal(await plain.exited, 0, plain.output());
    assert.equal(await tty.exited, 0, tty.output());
    // plain: timestamped lines, progress then the end
    assert.match(plain.output(), /^\d{4}-\d\d-\d\dT[\d:.]+Z   the default backend .* -> rule "team-a": moving, \d+ of 1200 keys/m);
    assert.match(plain.output(), /^\d{4}-\d\d-\d\dT[\d:.]+Z No migration in progress/m);
    assert.match(plain.output(), /default\.db\) -> rule "team-a": 1200 keys moved; done: every key it held for other backends has moved$/m);
    // terminal: frames redrawn in place (cursor back up and clear), ending complete
    assert.match(tty.output(), /\x1b\[\d+F\x1b\[J/);
    assert.match(tty.output(), /\[#{30}\] 100%\s+1200 keys\s+done/);

    const s = await status();
    assert.deepEqual([s.active, s.rateLimit, s.rateLimitFrom], [false, 0, 'topology']);
    const teamKeys = keysIn(db('team-a'));
    assert.deepEqual(teamKeys, moving, 'every team-a key, deleted ones included, is in its database');
    assert.deepEqual(keysIn(db('default')).filter((k) => k.includes('/team-a/')), []);
    const v = await harikube(['migrate', 'verify', '--endpoint', defaultEndpoint]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, new RegExp(`^  rule "team-a" \\(${teamEndpoint}\\): ${moving.length} keys, all in place$`, 'm'));
    // the data reads as before
    const got = await client.range({ key: b(moving[0]!) });
    assert.equal(got.kvs[0]?.value.toString(), `v-${moving[0]}`);
  });

  it('a removed rule: its database is emptied back, then status and verify say it is safe to delete', async () => {
    writeTopology({ backends: [], migration: { keysPerSecond: 0 } });
    const done = await waitUntil('the old team-a database emptied', async () => {
      const s = await status();
      return !s.active && s.sources.some((x) => x.rule === 'team-a' && x.phase === 'done') ? s : undefined;
    }, { timeoutMs: 60_000 });
    assert.ok(done);
    const st = await harikube(['migrate', 'status', '--metrics-address', middleware.metricsAddress]);
    assert.match(st.stdout, new RegExp(`^  the old database of rule "team-a" \\(${teamEndpoint}\\) -> the default backend: 1200 keys moved; emptied: no rule routes to this database any more and it holds no keys; it is safe to delete$`, 'm'));
    assert.deepEqual(keysIn(db('team-a')), []);

    const v = await harikube(['migrate', 'verify', '--endpoint', defaultEndpoint, '--retired-endpoint', teamEndpoint]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, new RegExp(`^  ${teamEndpoint}: it holds no keys and no rule routes to it: safe to delete\\.$`, 'm'));
    const inUse = await harikube(['migrate', 'verify', '--endpoint', defaultEndpoint, '--retired-endpoint', defaultEndpoint]);
    assert.equal(inUse.code, 1);
    assert.match(inUse.stdout, /it is the default backend in the topology in effect: keys live there; do not delete it/);
    const gone = await harikube(['migrate', 'verify', '--endpoint', defaultEndpoint, '--retired-endpoint', `sqlite://${db('never')}`]);
    assert.equal(gone.code, 1);
    assert.match(gone.stdout, /there is no SQLite database at .*never\.db \(deleted already, or a wrong path\)/);
    const all = await client.range({ key: b('/registry/configmaps/'), range_end: b('/registry/configmaps0') });
    assert.equal(Number(all.count), moving.length - deleted.length + staying.length);
  });
});

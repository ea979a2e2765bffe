/**
 * What etcd's robustness tests check, on every target: eight clients send Kubernetes-shaped traffic
 * (linearizable gets, lists with and without a limit, some pinned to an earlier revision, puts, optimistic
 * puts and deletes, creates, two-key transactions) on ten shared keys while a watcher follows them, and
 * `tools/robustness` (ours: etcd's Go client, porcupine) checks the recorded history: every operation
 * linearizable against a per-key model of etcd, every list exactly the snapshot the watch replays at its
 * revision, one global revision in real-time order, and the watch guarantees (ordered, unique, atomic, bookmarkable, reliable with the right
 * prev_kv, resumable). On the routed target the ten keys live in five databases (SQLite, PostgreSQL,
 * MariaDB, a real etcd, a child middleware). The second case crashes the server (kill -9) in the middle of
 * the traffic and starts it again: calls that failed meanwhile have an unknown outcome, which the watch
 * settles. The same runs through two layers (the parent routes the keys to a child middleware over SQLite),
 * with kill -9 of the child and of the parent. The checks are themselves checked first, on histories that
 * broken servers would produce.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { contractSuite } from '../support/contract.js';
import { EtcdClient } from '../support/grpc.js';
import { Middleware } from '../support/middleware.js';
import { createScratchStore, type ScratchStore } from '../support/scratch-store.js';
import { requireToolDir, skipUnlessTool } from '../support/tools.js';
import { waitUntil } from '../support/wait.js';

const skipTool = skipUnlessTool('robustness');

interface Report {
  ok: boolean;
  linearizable: string;
  violations: string[];
  ops: Record<string, number>;
  writes: number;
  lists: number;
  casFailed: number;
  patch: { unknown: number; patched: number; dropped: number };
  events: number;
  startRev: number;
  finalRev: number;
  resumed: Record<string, number>;
  errors?: Record<string, number>;
}

interface SelfTest {
  ok: boolean;
  cases: { name: string; want: string; violations: string[]; caught: boolean }[];
}

function robustness(args: string[]): Promise<string> {
  const bin = path.join(requireToolDir('robustness'), 'robustness');
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: 180_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`robustness ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Runs the traffic against `address` and returns the checked report. */
async function run(address: string, prefix: string, seconds: number): Promise<Report> {
  const out = await robustness(['--endpoint', address, '--prefix', prefix, '--duration', `${seconds}s`, '--clients', '8', '--keys', '10']);
  return JSON.parse(out) as Report;
}

/** One line for the test's output: how much traffic the checks saw. */
function summary(r: Report): string {
  const ops = Object.values(r.ops).reduce((a, b) => a + b, 0);
  return `${ops} ops, ${r.writes} writes took effect, ${r.lists} lists, ${r.casFailed} optimistic writes lost a race, ${r.events} events; unknown outcomes ${r.patch.unknown} (${r.patch.patched} took effect); linearizable: ${r.linearizable}`;
}

/** What every run must show: no violation, and traffic that exercised every kind of operation and contention. */
function assertHealthy(r: Report): void {
  assert.deepEqual(r.violations, [], `violations in ${JSON.stringify(r)}`);
  assert.equal(r.linearizable, 'Ok');
  assert.ok(r.writes >= 40, `only ${r.writes} writes took effect: ${JSON.stringify(r)}`);
  assert.ok(r.casFailed >= 10, `only ${r.casFailed} optimistic writes lost a race: the keys did not contend`);
  for (const kind of ['get', 'list', 'put', 'cas-put', 'cas-delete', 'create', 'put2']) assert.ok((r.ops[kind] ?? 0) >= 5, `too few ${kind}: ${JSON.stringify(r.ops)}`);
  assert.ok(r.events >= r.writes, `${r.events} events for ${r.writes} writes`);
  const resumed = Object.values(r.resumed);
  assert.equal(resumed.length, 2, 'both resumed watches ran');
  assert.ok(resumed.every((n) => n > 0));
}

it('the robustness checks catch the histories of broken servers (and pass a correct one)', { skip: skipTool }, async () => {
  const report = JSON.parse(await robustness(['--self-test'])) as SelfTest;
  const kinds = new Set(report.cases.map((c) => c.want));
  for (const want of ['', 'linearizability', 'list', 'reliable', 'unique', 'atomic', 'ordered', 'bookmarkable', 'revision', 'resumable']) {
    assert.ok(kinds.has(want), `no self-test case for "${want}"`);
  }
  for (const c of report.cases) assert.ok(c.caught, `${c.name}: expected a "${c.want}" violation, got ${JSON.stringify(c.violations)}`);
  assert.equal(report.ok, true);
});

await contractSuite('robustness', (t) => {
  it('Kubernetes-shaped traffic is linearizable, in one revision order, and keeps every watch guarantee', { skip: skipTool }, async (tc) => {
    const r = await run(t.address, t.prefix('robust'), 2);
    tc.diagnostic(summary(r));
    assertHealthy(r);
  });

  it('the same across a kill -9 and restart of the server in the middle of the traffic', { skip: skipTool }, async (tc) => {
    const r = await runWithCrash(t.address, t.prefix('robust-crash'), t.server);
    tc.diagnostic(summary(r));
  });
});

/** Runs 5 s of traffic and crashes `crashed` (kill -9, restart) 1.5 s in; checks the report and returns it. */
async function runWithCrash(address: string, prefix: string, crashed: { kill9(): Promise<void>; restart(): Promise<void> }): Promise<Report> {
  const traffic = run(address, prefix, 5);
  await new Promise((r) => setTimeout(r, 1_500));
  await crashed.kill9();
  await crashed.restart();
  const client = new EtcdClient(address);
  let restartedAt: number;
  try {
    // a parent whose child was killed answers Unavailable until its channel has reconnected (backoff <= 1 s)
    restartedAt = await waitUntil('the server to answer after the restart', async () => Number((await client.status()).header.revision), { timeoutMs: 15_000, intervalMs: 100 });
  } finally {
    client.close();
  }
  const r = await traffic;
  assertHealthy(r);
  assert.ok(r.patch.unknown >= 1, `no call failed: the crash did not hit the traffic (${JSON.stringify(r)})`);
  assert.ok(r.finalRev > restartedAt, 'the clients wrote again after the restart');
  return r;
}

describe('robustness through two layers: parent -> child middleware -> SQLite', { skip: skipTool }, () => {
  let stores: ScratchStore[] = [];
  let child: Middleware | undefined;
  let parent: Middleware | undefined;
  let dir: string | undefined;
  const prefix = () => `/registry/robust/${randomBytes(3).toString('hex')}/`;

  before(async () => {
    stores = await Promise.all([createScratchStore('sqlite'), createScratchStore('sqlite')]);
    dir = await mkdtemp(path.join(os.tmpdir(), 'hk-robust-layers-'));
    child = await Middleware.start({ endpoint: stores[1]!.endpoint, compactInterval: '0' });
    const topology = path.join(dir, 'topology.yaml');
    await writeFile(topology, stringify({ backends: [{ name: 'child', endpoint: `http://${child.address}`, prefix: { prefix: 'robust/' } }] }));
    parent = await Middleware.start({ endpoint: stores[0]!.endpoint, compactInterval: '0', extraArgs: ['--topology-config', `file://${topology}`] });
  });

  after(async () => {
    await parent?.stop();
    await child?.stop();
    await Promise.all(stores.map((st) => st.dispose().catch(() => undefined)));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('traffic through the parent keeps every guarantee', async (tc) => {
    const r = await run(parent!.address, prefix(), 2);
    tc.diagnostic(summary(r));
    assertHealthy(r);
  });

  it('the same across a kill -9 of the child layer: the parent recovers without a restart', async (tc) => {
    const r = await runWithCrash(parent!.address, prefix(), child!);
    tc.diagnostic(summary(r));
  });

  it('the same across a kill -9 of the parent layer', async (tc) => {
    const r = await runWithCrash(parent!.address, prefix(), parent!);
    tc.diagnostic(summary(r));
  });
});

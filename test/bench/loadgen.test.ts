/**
 * The bench's Go load generator (tools/loadgen) against a real etcd and, when built, kine: its counts are
 * the server's counts (every put it reports is stored, every watcher saw every event), its bounds hold, and
 * it refuses what it must refuse (non-loopback endpoints, a server that is not there).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import path from 'node:path';
import { promisify } from 'node:util';
import { runLoadgen, type LoadgenResult } from '../../bench/loadgen.js';
import { measureRow } from '../../bench/measure.js';
import { startEtcd, startKine, type BenchServer } from '../../bench/servers.js';
import { prefixEnd } from '../support/bytes.js';
import { freePort, skipUnless } from '../support/env.js';
import { EtcdClient } from '../support/grpc.js';
import { requireToolDir, skipUnlessTool } from '../support/tools.js';

const run = promisify(execFile);

async function countUnder(client: EtcdClient, prefix: string): Promise<number> {
  const res = await client.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix), count_only: true });
  return Number(res.count);
}

const noWarmup = ['--warmup', '0s'];
const skipEtcd = await skipUnless('etcd');
const skipKine = skipUnlessTool('kine') || (await skipUnless('etcdctl'));

describe('loadgen', { skip: skipUnlessTool('loadgen') }, () => {
  test('refuses an endpoint that is not loopback, before connecting', async () => {
    const bin = path.join(requireToolDir('loadgen'), 'loadgen');
    const err = await run(bin, ['--endpoint', '10.1.2.3:2379', '--row', 'put'], { timeout: 10_000 }).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    assert.ok(err, 'loadgen accepted a non-loopback endpoint');
    assert.equal(err.code, 2);
    assert.match(err.stderr, /only loopback addresses/);
  });

  test('fails within its bound, saying so, when nothing listens', async () => {
    const port = await freePort();
    await assert.rejects(runLoadgen(['--endpoint', `127.0.0.1:${port}`, '--row', 'put', '--max-ops', '10'], 30_000), /connecting to 127\.0\.0\.1/);
  });

  describe('against etcd', { skip: skipEtcd }, () => {
    let etcd: BenchServer;
    let client: EtcdClient;
    before(async () => {
      etcd = await startEtcd();
      client = new EtcdClient(etcd.address);
    });
    after(async () => {
      client?.close();
      await etcd?.stop();
    });

    test('put: every op it counts is a key stored, and --max-ops bounds the phase', async () => {
      const r = await runLoadgen(['--endpoint', etcd.address, '--row', 'put', '--clients', '8', '--max-ops', '300', '--prefix', '/lg/put/', ...noWarmup], 60_000);
      assert.equal(r.errors, 0, r.firstError);
      assert.equal(r.ops, 300);
      assert.equal(await countUnder(client, '/lg/put/measure/'), 300);
      assert.ok(r.p50Ms > 0 && r.p99Ms >= r.p50Ms && r.maxMs >= r.p99Ms, JSON.stringify(r));
      assert.ok(r.opsPerSec > 0 && r.cpuSeconds >= 0 && Number.isFinite(r.clientCores));
    });

    test('--duration bounds the phase when the op budget is far away', async () => {
      const r = await runLoadgen(['--endpoint', etcd.address, '--row', 'get', '--keys', '50', '--max-ops', '100000000', '--duration', '1s', '--prefix', '/lg/dur/', ...noWarmup], 60_000);
      assert.equal(r.errors, 0, r.firstError);
      assert.ok(r.seconds >= 1 && r.seconds < 5, `measured ${r.seconds} s for a 1 s bound`);
      assert.ok(r.ops > 0 && r.ops < 100_000_000);
    });

    test('endMeasurement (SIGUSR1) ends the measured phase early, its result printed and counted as usual', async () => {
      let end: (() => void) | undefined;
      const r = await runLoadgen(['--endpoint', etcd.address, '--row', 'put', '--clients', '4', '--max-ops', '100000000', '--duration', '60s', '--prefix', '/lg/end/', ...noWarmup], 90_000, {
        onSpawn: (e) => (end = e),
        onStart: () => void setTimeout(() => end?.(), 1_000),
      });
      assert.equal(r.errors, 0, r.firstError);
      assert.ok(r.seconds >= 1 && r.seconds < 10, `measured ${r.seconds} s, ended after 1 s of a 60 s bound`);
      assert.equal(await countUnder(client, '/lg/end/measure/'), r.ops, 'every put it counts is stored');
    });

    test('get (lin and ser), txn and list run without errors on the keys they load', async () => {
      const rows: [string, string[]][] = [
        ['get', ['--keys', '200']],
        ['get', ['--keys', '200', '--serializable']],
        ['txn', ['--clients', '4']],
        ['list', ['--keys', '250', '--page-size', '100', '--clients', '2']],
      ];
      for (const [row, extra] of rows) {
        const prefix = `/lg/${row}-${extra.length}/`;
        const r = await runLoadgen(['--endpoint', etcd.address, '--row', row, '--max-ops', '100', '--prefix', prefix, ...extra], 60_000);
        assert.equal(r.errors, 0, `${row} ${extra.join(' ')}: ${r.firstError}`);
        assert.equal(r.ops, 100, `${row} ${extra.join(' ')}`);
      }
      // list and get verify what they read; txn's updates are real writes: 4 keys, 100 measured updates
      // between them on top of their creation (and the warm-up's few)
      const txnKeys = await client.range({ key: Buffer.from('/lg/txn-2/'), range_end: prefixEnd('/lg/txn-2/') });
      assert.equal(txnKeys.kvs.length, 4);
      const updates = txnKeys.kvs.reduce((sum, kv) => sum + Number(kv.version) - 1, 0);
      assert.ok(updates >= 100 && updates <= 110, `updates ${updates}`);
    });

    test("--namespaces spreads every row's keys over that many namespaces, and the rows still verify what they read", async () => {
      const ns = ['--namespaces', '4'];
      for (const [row, extra] of [['get', ['--keys', '200']], ['list', ['--keys', '200', '--page-size', '30']], ['txn', ['--clients', '8']], ['put', ['--clients', '4']]] as const) {
        const r = await runLoadgen(['--endpoint', etcd.address, '--row', row, '--max-ops', '40', '--prefix', `/lg/ns-${row}/`, ...ns, ...extra, ...noWarmup], 60_000);
        assert.equal(r.errors, 0, `${row}: ${r.firstError}`);
      }
      for (let n = 0; n < 4; n++) {
        assert.equal(await countUnder(client, `/lg/ns-get/ns-${n}/`), 50, `get: a quarter of 200 keys in ns-${n}`);
        assert.equal(await countUnder(client, `/lg/ns-txn/ns-${n}/`), 2, `txn: 2 of 8 clients' keys in ns-${n}`);
        assert.equal(await countUnder(client, `/lg/ns-put/ns-${n}/measure/`), 10, `put: 10 of 40 keys in ns-${n}`);
      }
      assert.equal(await countUnder(client, '/lg/ns-get/'), 200, 'nothing outside the namespaces');
      const w = await runLoadgen(['--endpoint', etcd.address, '--row', 'watch', '--watchers', '2', '--max-ops', '20', '--interval', '5ms', '--prefix', '/lg/ns-watch/', ...ns], 60_000);
      assert.equal(w.errors, 0, w.firstError);
      assert.equal(w.ops, 40, 'every watcher saw every put across the namespaces');
      assert.equal(await countUnder(client, '/lg/ns-watch/ns-3/measure/'), 5);
    });

    test('watch: every watcher receives every put, latency per (watcher, event)', async () => {
      const r = await runLoadgen(
        ['--endpoint', etcd.address, '--row', 'watch', '--watchers', '5', '--max-ops', '40', '--interval', '5ms', '--prefix', '/lg/watch/'],
        60_000,
      );
      assert.equal(r.errors, 0, r.firstError);
      assert.equal(r.ops, 200);
      assert.ok(r.p99Ms > 0 && r.p99Ms < 5_000);
    });

    test('load: stores exactly the keys asked for', async () => {
      const r = await runLoadgen(['--endpoint', etcd.address, '--row', 'load', '--keys', '1000', '--value-size', '64', '--prefix', '/lg/load/'], 60_000);
      assert.equal(r.errors, 0, r.firstError);
      assert.equal(await countUnder(client, '/lg/load/'), 1000);
    });

    test("the bench samples the server's CPU over the measured phase only", async () => {
      const m = await measureRow({ name: 'put-4', what: '', args: ['--row', 'put', '--clients', '4', '--max-ops', '500', ...noWarmup], timeoutMs: 60_000 }, etcd);
      assert.equal(m.errors, 0, m.firstError);
      assert.equal(m.ops, 500);
      assert.ok(m.serverCpuSeconds > 0, `server cpu ${m.serverCpuSeconds}`);
      assert.ok(m.windowUs[1] > m.windowUs[0]);
      // the window is the measured phase: its length matches what loadgen measured (pipe latency aside)
      const windowSeconds = (m.windowUs[1] - m.windowUs[0]) / 1e6;
      assert.ok(Math.abs(windowSeconds - m.seconds) < 0.5, `window ${windowSeconds} s, loadgen ${m.seconds} s`);
    });
  });

  describe('against kine on SQLite', { skip: skipKine }, () => {
    let kine: BenchServer;
    before(async () => {
      kine = await startKine('sqlite');
    });
    after(async () => {
      await kine?.stop();
    });

    test('loads with single Puts (kine refuses multi-put Txns) and every row runs', async () => {
      const results: [string, LoadgenResult][] = [];
      for (const [row, extra] of [['get', ['--keys', '300']], ['txn', ['--clients', '4']], ['list', ['--keys', '300']]] as const) {
        results.push([row, await runLoadgen(['--endpoint', kine.address, '--row', row, '--max-ops', '50', '--prefix', `/lg/kine-${row}/`, ...extra], 120_000)]);
      }
      for (const [row, r] of results) {
        assert.equal(r.errors, 0, `${row}: ${r.firstError}`);
        assert.equal(r.ops, 50, row);
      }
    });
  });
});

/**
 * A real etcd as a rule backend, with real processes: what the etcd holds (checked with etcdctl), leases
 * that expire there with DELETE events carrying prev_kv, compaction of the global revision compacting the
 * etcd, and a stop/start of the etcd under writers and watchers: only requests for its keys fail, with
 * Unavailable, the rest keeps serving, and the middleware recovers by itself when the etcd is back.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status as Status } from '@grpc/grpc-js';
import { assertAckedWritesKept, type AckedWrites } from '../support/acked-writes.js';
import { skipUnless } from '../support/env.js';
import { Etcd } from '../support/etcd.js';
import { etcdctl } from '../support/etcdctl.js';
import { EtcdClient } from '../support/grpc.js';
import { startEtcdRule, type EtcdRuleRig } from '../support/etcd-rule.js';
import { Middleware } from '../support/middleware.js';
import { waitUntil } from '../support/wait.js';

const skip = await skipUnless('etcd');

const b = (s: string) => Buffer.from(s);
/** Keys ending in an even digit live in the etcd, all others in the default SQLite backend. */
const inEtcd = (key: string) => /[02468]$/.test(key);

describe('a real etcd as a rule backend', { skip }, () => {
  let rig: EtcdRuleRig;
  let etcd: Etcd;
  let mw: Middleware;
  let client: EtcdClient;

  before(async () => {
    rig = await startEtcdRule('[02468]$');
    ({ etcd, mw, client } = rig);
  });

  after(async () => {
    await rig?.stop();
  });

  it('stores routed keys under their own names, with the global revisions readable by etcdctl', async () => {
    await client.put({ key: b('inspect/1'), value: b('one') });
    const put = await client.put({ key: b('inspect/2'), value: b('two') });
    const rev = BigInt(put.header.revision);
    const again = await client.put({ key: b('inspect/2'), value: b('two again') });

    const got = await etcdctl(etcd.address, ['get', '--prefix', 'inspect/']);
    assert.equal(got.code, 0, got.stderr);
    // only the even key is in the etcd, its value is the envelope line then the client's value
    assert.equal(got.stdout, `inspect/2\nharikube/v1 mod=${again.header.revision} create=${rev} prev=${rev} version=2 lease=0 sub=0\ntwo again\n`);
    const map = await etcdctl(etcd.address, ['get', `harikube/revision/${String(again.header.revision).padStart(20, '0')}`, '-w', 'json']);
    assert.equal(map.code, 0, map.stderr);
    const etcdRev = Number((JSON.parse(map.stdout) as { kvs: { mod_revision: number }[] }).kvs[0]!.mod_revision);
    const inEtcdAt = await etcdctl(etcd.address, ['get', 'inspect/2', `--rev=${etcdRev}`, '--print-value-only']);
    assert.match(inEtcdAt.stdout, new RegExp(`^harikube/v1 mod=${again.header.revision} `), 'the map names the etcd revision holding that global revision');

    // through the middleware: global revisions, a snapshot read at the older revision
    const now = await client.range({ key: b('inspect/2') });
    assert.deepEqual([now.kvs[0]!.mod_revision, now.kvs[0]!.create_revision, now.kvs[0]!.version], [again.header.revision, String(rev), '2']);
    const old = await client.range({ key: b('inspect/'), range_end: b('inspect0'), revision: String(rev) });
    assert.deepEqual(old.kvs.map((kv) => [kv.key.toString(), kv.value.toString()]), [['inspect/1', 'one'], ['inspect/2', 'two']]);
  });

  it('expires leased keys in the etcd on time, with DELETE events carrying prev_kv', async () => {
    const lease = await client.leaseGrant(2);
    const watch = client.watch();
    const w = (await watch.create({ key: b('leased/'), range_end: b('leased0'), prev_kv: true })).watch_id;
    await client.put({ key: b('leased/2'), value: b('in etcd'), lease: lease.ID });
    await client.put({ key: b('leased/3'), value: b('in sqlite'), lease: lease.ID });
    const started = Date.now();
    const events = await watch.waitForEvents(w, 4, 15_000);
    const deletes = events.filter((e) => e.type === 'Delete');
    assert.deepEqual(deletes.map((e) => [e.kv!.key.toString(), e.prev_kv?.value.toString()]).sort(), [
      ['leased/2', 'in etcd'],
      ['leased/3', 'in sqlite'],
    ]);
    assert.ok(Date.now() - started >= 1500, 'not before the TTL');
    const left = await etcdctl(etcd.address, ['get', '--prefix', 'leased/', '--keys-only']);
    assert.equal(left.stdout.trim(), '', 'the key is gone from the etcd');
    watch.close();
  });

  it('compacting the global revision compacts the etcd and its revision map', async () => {
    const first = await client.put({ key: b('compact/0'), value: b('a') });
    const mapped = JSON.parse(
      (await etcdctl(etcd.address, ['get', `harikube/revision/${String(first.header.revision).padStart(20, '0')}`, '-w', 'json'])).stdout,
    ) as { kvs: { mod_revision: number }[] };
    const oldEtcdRev = mapped.kvs[0]!.mod_revision;
    for (let i = 0; i < 5; i++) await client.put({ key: b('compact/0'), value: b(`v${i}`) });
    const last = await client.put({ key: b('compact/2'), value: b('z') });
    await client.compact(last.header.revision, true);
    const atOld = await etcdctl(etcd.address, ['get', 'compact/0', `--rev=${oldEtcdRev}`]);
    assert.notEqual(atOld.code, 0);
    assert.match(atOld.stderr, /compacted/);
    const entries = await etcdctl(etcd.address, ['get', '--prefix', 'harikube/revision/', '--keys-only']);
    const kept = entries.stdout.split('\n').filter(Boolean).map((k) => Number(k.slice('harikube/revision/'.length)));
    assert.deepEqual(kept, [Number(last.header.revision)], 'map entries below the compaction are deleted');
    // the compacted revision still reads, older ones are compacted, watches from it still work
    assert.equal((await client.range({ key: b('compact/0'), revision: last.header.revision })).kvs[0]!.value.toString(), 'v4');
    await assert.rejects(client.range({ key: b('compact/0'), revision: first.header.revision }), (err: { code?: number }) => err.code === Status.OUT_OF_RANGE);
    const watch = client.watch();
    const w = (await watch.create({ key: b('compact/'), range_end: b('compact0'), start_revision: last.header.revision })).watch_id;
    const ev = await watch.waitForEvents(w, 1);
    assert.deepEqual([ev[0]!.kv!.key.toString(), ev[0]!.kv!.mod_revision], ['compact/2', last.header.revision]);
    watch.close();
  });

  it('a stopped etcd fails only the requests for its keys, with Unavailable, and is used again once back', async () => {
    const start = BigInt((await client.range({ key: b('x') })).header.revision);
    const watch = client.watch();
    const w = (await watch.create({ key: b('outage/'), range_end: b('outage0'), start_revision: String(start + 1n), prev_kv: true })).watch_id;
    const acked: AckedWrites = new Map();
    const failed: string[] = [];
    let phase: 'before' | 'down' | 'back' = 'before';
    const okWhileDown: string[] = [];
    const writer = async (n: number) => {
      for (let i = 0; phase !== 'back' || i < 40; i++) {
        const key = `outage/${n}/${i}`;
        const value = `v${i}`;
        try {
          const res = await client.put({ key: b(key), value: b(value) });
          acked.set(key, { value, revision: BigInt(res.header.revision) });
          if (phase === 'down' && !inEtcd(key)) okWhileDown.push(key);
        } catch (err) {
          const code = (err as { code?: number }).code;
          assert.equal(code, Status.UNAVAILABLE, `a write during the outage fails with Unavailable: ${String(err)}`);
          assert.ok(inEtcd(key), `${key} is not in the etcd, yet its write failed: ${String(err)}`);
          failed.push(key);
        }
        if (i > 400) break;
      }
    };
    const writers = Promise.all([0, 1, 2].map(writer));
    await waitUntil('writes before the outage', () => (acked.size >= 30 ? true : undefined), { timeoutMs: 30_000 });
    await etcd.stop();
    phase = 'down';
    await waitUntil('writes failing and succeeding during the outage', () => (failed.length >= 5 && okWhileDown.length >= 5 ? true : undefined), { timeoutMs: 30_000 });
    // reads of the other database keep serving
    assert.ok((await client.range({ key: b(okWhileDown[0]!) })).kvs.length === 1);
    await assert.rejects(client.range({ key: b('outage/0/0') }), (err: { code?: number }) => err.code === Status.UNAVAILABLE);
    await etcd.restart();
    phase = 'back';
    await writers;
    await waitUntil('etcd keys writable again without a restart', async () => {
      try {
        await client.put({ key: b('outage/after/0'), value: b('back') });
        return true;
      } catch {
        return undefined;
      }
    }, { timeoutMs: 20_000 });
    await assertAckedWritesKept(client, { key: b('outage/'), range_end: b('outage0') }, acked, { stream: watch, id: w, timeoutMs: 30_000 });
    watch.close();
  });
});

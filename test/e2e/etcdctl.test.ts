/**
 * Debian's etcdctl against the middleware on SQLite, with the same assertions against the reference etcd:
 * what an operator types must work and print the same things.
 */
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { contractSuite } from '../support/contract.js';
import { CtlWatch, etcdctl, etcdctlJson, etcdctlOk, fromBase64, parseCtlJson } from '../support/etcdctl.js';

interface CtlKv {
  key: string;
  value?: string;
  create_revision: number | string;
  mod_revision: number | string;
  version: number | string;
}
interface CtlHeader {
  cluster_id: string | number;
  member_id: string | number;
  revision: string | number;
}
interface CtlRange {
  header: CtlHeader;
  kvs?: CtlKv[];
  more?: boolean;
  count?: number;
}

const pairs = (r: CtlRange) => (r.kvs ?? []).map((kv) => [fromBase64(kv.key), fromBase64(kv.value)]);

await contractSuite(
  'etcdctl',
  (t) => {
    const ctl = (...args: string[]) => etcdctlOk(t.address, args);
    const json = <T>(...args: string[]) => etcdctlJson<T>(t.address, args);
    const watches: CtlWatch[] = [];
    after(async () => {
      for (const w of watches) await w.stop();
    });

    it('put, get (prefix, limit, json) and del (prefix)', async () => {
      const p = t.prefix('ctl-kv');
      for (const [k, v] of [['a', '1'], ['b', '2'], ['c', '3']]) assert.equal(await ctl('put', p + k, v), 'OK\n');
      assert.equal(await ctl('get', `${p}a`), `${p}a\n1\n`);
      assert.equal(await ctl('get', '--prefix', '--print-value-only', p), '1\n2\n3\n');
      const all = await json<CtlRange>('get', '--prefix', p);
      assert.deepEqual(pairs(all), [[`${p}a`, '1'], [`${p}b`, '2'], [`${p}c`, '3']]);
      assert.equal(all.count, 3);
      assert.equal(String(all.kvs![2]!.mod_revision), String(all.header.revision));
      const limited = await json<CtlRange>('get', '--prefix', '--limit=2', p);
      assert.deepEqual([pairs(limited).length, limited.more, limited.count], [2, true, 3]);
      assert.equal(await ctl('get', `${p}missing`), '');
      assert.equal(await ctl('del', `${p}a`), '1\n');
      assert.equal(await ctl('del', '--prefix', p), '2\n');
      assert.equal(await ctl('del', '--prefix', p), '0\n');
      const none = await json<CtlRange>('get', '--prefix', p);
      assert.deepEqual([none.kvs ?? [], none.count ?? 0], [[], 0]);
    });

    it('txn -i with compares: success branch, then failure branch', async () => {
      const p = t.prefix('ctl-txn');
      await ctl('put', `${p}k`, 'v1');
      const script = [`value("${p}k") = "v1"`, `mod("${p}missing") = "0"`, '', `put ${p}k v2`, `put ${p}new n`, '', `get ${p}k`, '', ''].join('\n');
      const prompts = 'compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\n';
      const first = await etcdctl(t.address, ['txn', '-i'], { input: script });
      assert.equal(first.code, 0, first.stderr);
      assert.equal(first.stdout, `${prompts}SUCCESS\n\nOK\n\nOK\n`);
      const second = await etcdctl(t.address, ['txn', '-i'], { input: script });
      assert.equal(second.stdout, `${prompts}FAILURE\n\n${p}k\nv2\n`);
      assert.equal(await ctl('get', '--print-value-only', `${p}new`), 'n\n');

      // The JSON form shows the response structure.
      const jsonScript = [`version("${p}k") > "1"`, '', `del ${p}new`, `get ${p}k`, '', '', ''].join('\n');
      const res = await etcdctl(t.address, ['txn', '-w', 'json'], { input: jsonScript });
      assert.equal(res.code, 0, res.stderr);
      const parsed = parseCtlJson<{
        succeeded: boolean;
        header: CtlHeader;
        responses: { Response: Record<string, { deleted?: number; kvs?: CtlKv[]; count?: number }> }[];
      }>(res.stdout);
      assert.equal(parsed.succeeded, true);
      assert.deepEqual(parsed.responses.map((r) => Object.keys(r.Response)), [['ResponseDeleteRange'], ['ResponseRange']]);
      assert.equal(parsed.responses[0]!.Response.ResponseDeleteRange!.deleted, 1);
      assert.equal(fromBase64(parsed.responses[1]!.Response.ResponseRange!.kvs![0]!.value), 'v2');
    });

    it('watch --prefix --prev-kv prints puts and deletes as they happen', async () => {
      const p = t.prefix('ctl-watch');
      const start = (await json<CtlRange>('get', `${p}x`)).header.revision;
      // Starting at the next revision makes the output independent of when etcdctl's watch is established.
      const w = new CtlWatch(t.address, ['--prefix', '--prev-kv', `--rev=${BigInt(start) + 1n}`, p]);
      watches.push(w);
      await ctl('put', `${p}a`, '1');
      await ctl('put', `${p}a`, '2');
      await ctl('del', `${p}a`);
      assert.deepEqual(await w.waitForLines(13), [
        'PUT', `${p}a`, '1',
        'PUT', `${p}a`, '1', `${p}a`, '2',
        'DELETE', `${p}a`, '2', `${p}a`, '',
      ]);
      await w.stop();
    });

    it('lease grant, put --lease, keep-alive --once, timetolive --keys, list, revoke', async () => {
      const key = `${t.prefix('ctl-lease')}k`;
      const granted = await ctl('lease', 'grant', '60');
      const hex = /^lease ([0-9a-f]+) granted with TTL\(60s\)\n$/.exec(granted)?.[1];
      assert.ok(hex, granted);
      assert.equal(await ctl('put', `--lease=${hex}`, key, 'v'), 'OK\n');
      assert.equal(await ctl('lease', 'keep-alive', '--once', hex), `lease ${hex} keepalived with TTL(60)\n`);
      const ttl = await ctl('lease', 'timetolive', '--keys', hex);
      assert.match(ttl, new RegExp(`^lease ${hex} granted with TTL\\(60s\\), remaining\\(\\d+s\\), attached keys\\(\\[${key}\\]\\)\\n$`));
      const ttlJson = await json<{ id: string; 'granted-ttl': number; keys: string[] }>('lease', 'timetolive', '--keys', hex);
      assert.equal(BigInt(ttlJson.id), BigInt(`0x${hex}`));
      assert.deepEqual([ttlJson['granted-ttl'], ttlJson.keys.map(fromBase64)], [60, [key]]);
      assert.ok((await ctl('lease', 'list')).split('\n').includes(hex));
      assert.equal(await ctl('lease', 'revoke', hex), `lease ${hex} revoked\n`);
      assert.equal(await ctl('get', key), '');
      assert.equal(await ctl('lease', 'timetolive', hex), `lease ${hex} already expired\n`);
    });

    it('compaction: the compact revision stays readable, older revisions are an error', async () => {
      const key = `${t.prefix('ctl-compact')}k`;
      await ctl('put', key, '1');
      const r1 = (await json<CtlRange>('get', key)).header.revision;
      await ctl('put', key, '2');
      const r2 = (await json<CtlRange>('get', key)).header.revision;
      assert.equal(await ctl('compaction', String(r2)), `compacted revision ${r2}\n`);
      assert.equal(await ctl('get', key, `--rev=${r2}`), `${key}\n2\n`);
      const old = await etcdctl(t.address, ['get', key, `--rev=${r1}`]);
      assert.notEqual(old.code, 0);
      assert.match(old.stderr, /^Error: etcdserver: mvcc: required revision has been compacted$/m);
    });

    it('endpoint status and health', async () => {
      const [status] = await json<{ Endpoint: string; Status: { header: CtlHeader; version: string; dbSize: number; leader: string | number } }[]>(
        'endpoint',
        'status',
      );
      assert.equal(status!.Endpoint, t.address);
      assert.match(status!.Status.version, /^\d+\.\d+\.\d+$/);
      assert.ok(status!.Status.dbSize > 0);
      assert.equal(String(status!.Status.leader), String(status!.Status.header.member_id));
      const table = await ctl('endpoint', 'status');
      assert.ok(table.startsWith(`${t.address}, `), table);
      const [health] = await json<{ endpoint: string; health: boolean }[]>('endpoint', 'health');
      assert.deepEqual([health!.endpoint, health!.health], [t.address, true]);
      const plain = await etcdctl(t.address, ['endpoint', 'health']);
      assert.equal(plain.code, 0);
      assert.match(plain.stdout + plain.stderr, new RegExp(`^${t.address} is healthy: successfully committed proposal`, 'm'));
    });

    it('member list shows one started member with its client URL', async () => {
      const list = await json<{ members: { ID: string | number; name: string; clientURLs: string[] }[] }>('member', 'list');
      assert.equal(list.members.length, 1);
      assert.ok(list.members[0]!.clientURLs.includes(`http://${t.address}`), JSON.stringify(list.members[0]));
      const line = await ctl('member', 'list');
      assert.match(line, new RegExp(`^[0-9a-f]+, started, [^,]*, [^,]*, http://${t.address}, false\\n$`));
    });
  },
  { targets: ['etcd', 'middleware-sqlite'], services: ['etcdctl'] },
);

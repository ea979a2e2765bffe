/**
 * One database of a routed topology goes away: requests that touch it fail with Unavailable, and only
 * they. Writes to the other database that share a group commit with them succeed, and the failed requests
 * consume no revision (the next successful write is exactly one above the last).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status as Status } from '@grpc/grpc-js';
import { parseEndpoint, type SqlServerEndpoint } from '../../middleware/src/topology/endpoint.js';
import { b, rev } from '../support/bytes.js';
import { skipUnless } from '../support/env.js';
import { EtcdClient } from '../support/grpc.js';
import { Middleware } from '../support/middleware.js';
import { createScratchStore, type ScratchStore } from '../support/scratch-store.js';
import { TcpProxy } from '../support/tcp-proxy.js';

const skip = await skipUnless('postgres');

function proxied(endpoint: string, port: number): string {
  const u = new URL(endpoint);
  u.port = String(port);
  return u.toString();
}

describe('a routed database that is down fails only the requests that touch it', { skip }, () => {
  let sqlite: ScratchStore;
  let postgres: ScratchStore;
  let proxy: TcpProxy;
  let dir: string;
  let mw: Middleware;
  const clients: EtcdClient[] = [];

  before(async () => {
    sqlite = await createScratchStore('sqlite');
    postgres = await createScratchStore('postgres');
    const target = parseEndpoint(postgres.endpoint) as SqlServerEndpoint;
    proxy = await TcpProxy.start({ host: target.host, port: target.port });
    dir = await mkdtemp(path.join(os.tmpdir(), 'hk-isolation-'));
    const topology = path.join(dir, 'topology.yaml');
    // keys ending in "p" live in PostgreSQL (through the proxy), the rest in SQLite
    await writeFile(topology, `backends:\n- name: pg\n  endpoint: ${proxied(postgres.endpoint, proxy.port)}\n  regexp: { key: "p$" }\n`);
    mw = await Middleware.start({ endpoint: sqlite.endpoint, compactInterval: '0', extraArgs: ['--topology-config', `file://${topology}`] });
    for (let i = 0; i < 4; i++) clients.push(new EtcdClient(mw.address));
  });

  after(async () => {
    for (const c of clients) c.close();
    await mw?.stop();
    await proxy?.close();
    await Promise.all([sqlite?.dispose(), postgres?.dispose()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a key too long for PostgreSQL fails alone with InvalidArgument, without a stack trace in the log', async () => {
    const r0 = rev(await clients[0]!.range({ key: b('/iso/') }));
    let ok = 0;
    for (let round = 0; round < 5; round++) {
      const long = Buffer.concat([b(`/iso/long/${round}/`), Buffer.alloc(3000, 0x78), b('p')]);
      const puts = Array.from({ length: 16 }, (_, i) => clients[i % clients.length]!.put({ key: b(`/iso/short/${round}/${i}${i % 2 ? 'p' : 's'}`), value: b('v') }));
      const results = await Promise.allSettled([...puts, clients[round % clients.length]!.put({ key: long, value: b('v') })]);
      for (const r of results.slice(0, 16)) {
        assert.equal(r.status, 'fulfilled', r.status === 'rejected' ? String((r.reason as Error).message) : '');
        ok++;
      }
      const l = results[16]!;
      assert.equal(l.status, 'rejected');
      const err = (l as PromiseRejectedResult).reason as { code?: number; details?: string };
      assert.equal(err.code, Status.INVALID_ARGUMENT);
      assert.match(err.details ?? '', /key is too long: 3\d{3} bytes exceed the 2048-byte key limit of PostgreSQL storage/);
    }
    assert.equal(rev(await clients[0]!.range({ key: b('/iso/') })), r0 + BigInt(ok), 'no revision consumed by the refused keys');
    const log = mw.process!.tail();
    assert.doesNotMatch(log, /"stack"|storage error|write batch failed/, 'nothing logged as a storage failure');
  });

  it('SQLite writes in the same group commits succeed, PostgreSQL ones fail Unavailable, no revision is burnt', async () => {
    const c = clients[0]!;
    assert.ok(rev(await c.put({ key: b('/iso/warm-p'), value: b('1') })) > 0n, 'PostgreSQL reachable at first');
    await proxy.close(); // connections cut, new ones refused
    const r0 = rev(await c.range({ key: b('/iso/') }));
    const revisions: bigint[] = [];
    let unavailable = 0;
    for (let round = 0; round < 10; round++) {
      const puts = Array.from({ length: 16 }, (_, i) => {
        const key = `/iso/${round}/${i}${i % 4 === 0 ? 'p' : 's'}`;
        return clients[i % clients.length]!.put({ key: b(key), value: b('v') }).then(
          (res) => ({ key, rev: rev(res) }),
          (err: { code?: number; details?: string }) => ({ key, err }),
        );
      });
      for (const r of await Promise.all(puts)) {
        if (r.key.endsWith('p')) {
          assert.ok('err' in r, `${r.key} (PostgreSQL, down) cannot succeed`);
          assert.equal(r.err.code, Status.UNAVAILABLE, `${r.key}: ${r.err.details}`);
          unavailable++;
        } else {
          assert.ok('rev' in r, `${r.key} (SQLite) failed: ${'err' in r ? r.err.details : ''}`);
          revisions.push(r.rev);
        }
      }
    }
    assert.equal(unavailable, 40);
    revisions.sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    assert.deepEqual(revisions, Array.from({ length: 120 }, (_, i) => r0 + 1n + BigInt(i)), 'one revision per successful write, no gaps');
    assert.equal(rev(await c.range({ key: b('/iso/') })), r0 + 120n);
  });
});

/**
 * The database server stops answering without closing anything (a hung server, a network that drops
 * packets; here a proxy that goes silent). With --query-timeout 1s a request fails with Unavailable
 * instead of waiting for TCP to give up (minutes), the middleware keeps serving what does not need the
 * database, and once the server answers again writes go through with nothing acknowledged lost.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status as Status } from '@grpc/grpc-js';
import { parseEndpoint, type SqlServerEndpoint } from '../../middleware/src/topology/endpoint.js';
import { skipUnless } from '../support/env.js';
import { EtcdClient } from '../support/grpc.js';
import { Middleware } from '../support/middleware.js';
import { createScratchStore, type ScratchStore } from '../support/scratch-store.js';
import { TcpProxy } from '../support/tcp-proxy.js';

const b = (s: string) => Buffer.from(s);

/** The same endpoint, through the proxy. */
function proxied(endpoint: string, port: number): string {
  const e = parseEndpoint(endpoint) as SqlServerEndpoint;
  return endpoint.replace(`${e.host}:${e.port}`, `127.0.0.1:${port}`);
}

async function unavailable(call: Promise<unknown>, what: string): Promise<void> {
  await assert.rejects(call, (err: { code?: number; details?: string }) => {
    assert.equal(err.code, Status.UNAVAILABLE, `${what}: Unavailable, not a wait for the client's deadline (got ${err.details})`);
    return true;
  });
}

for (const kind of ['postgres', 'mysql'] as const) {
  const skip = await skipUnless(kind);
  describe(`${kind === 'postgres' ? 'PostgreSQL' : 'MariaDB'} stops answering`, { skip }, () => {
    let store: ScratchStore;
    let proxy: TcpProxy;
    let mw: Middleware;
    let client: EtcdClient;

    before(async () => {
      store = await createScratchStore(kind);
      const target = parseEndpoint(store.endpoint) as SqlServerEndpoint;
      proxy = await TcpProxy.start({ host: target.host, port: target.port });
      mw = await Middleware.start({ endpoint: proxied(store.endpoint, proxy.port), compactInterval: '0', extraArgs: ['--query-timeout', '1s'] });
      client = new EtcdClient(mw.address);
    });

    after(async () => {
      client?.close();
      await mw?.stop();
      await proxy?.close();
      await store?.dispose();
    });

    it('fails requests with Unavailable while it is silent and recovers when it answers', async () => {
      const before = await client.put({ key: b('/hang/before'), value: b('1') });

      proxy.freeze();
      await unavailable(client.put({ key: b('/hang/during'), value: b('2') }), 'a put');
      await unavailable(client.range({ key: b('/hang/before') }), 'a read');

      proxy.thaw();
      let after: Awaited<ReturnType<EtcdClient['put']>> | undefined;
      for (let i = 0; i < 60 && !after; i++) {
        after = await client.put({ key: b('/hang/after'), value: b('3') }).catch(async () => {
          await new Promise((r) => setTimeout(r, 500));
          return undefined;
        });
      }
      assert.ok(after, 'writes go through again once the database answers');
      assert.ok(BigInt(after.header.revision) > BigInt(before.header.revision), 'revisions continue above every earlier one');
      const stored = await client.range({ key: b('/hang/'), range_end: b('/hang0') });
      const keys = stored.kvs.map((kv) => kv.key.toString());
      assert.ok(keys.includes('/hang/before'), 'the write acknowledged before is there');
      assert.ok(keys.includes('/hang/after'));
    });
  });
}

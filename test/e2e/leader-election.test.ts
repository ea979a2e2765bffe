/**
 * Several replicas on one PostgreSQL default backend with --leader-elect: exactly one serves; a standby
 * takes over when the leader is paused past its lease or stops; a deposed leader that wakes up commits
 * nothing (fenced) and exits; revisions continue above every one handed out before, nothing acknowledged
 * is lost.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { b } from '../support/bytes.js';
import { skipUnless } from '../support/env.js';
import { EtcdClient } from '../support/grpc.js';
import { Middleware } from '../support/middleware.js';
import { createScratchStore, type ScratchStore } from '../support/scratch-store.js';
import { waitUntil } from '../support/wait.js';

const skip = await skipUnless('postgres');

describe('leader election across replicas', { skip }, () => {
  let store: ScratchStore;
  const replicas: Middleware[] = [];
  const clients: EtcdClient[] = [];
  const replica = async (identity: string, waitFor: 'ready' | 'live') => {
    const m = await Middleware.start({
      endpoint: store.endpoint,
      compactInterval: '0',
      waitFor,
      extraArgs: ['--leader-elect', '--leader-elect-identity', identity, '--leader-elect-lease-duration', '2s', '--leader-elect-renew-interval', '500ms'],
    });
    replicas.push(m);
    const c = new EtcdClient(m.address);
    clients.push(c);
    return { m, c };
  };

  /** The connection was refused while standing by and backs off; clients retry, as kube-apiserver's does. */
  const firstWrite = (c: EtcdClient, key: string, value: string) =>
    waitUntil(`a write of ${key} through the new leader`, () => c.put({ key: b(key), value: b(value) }).catch(() => undefined), { timeoutMs: 30_000, intervalMs: 200 });

  before(async () => {
    store = await createScratchStore('postgres');
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const m of replicas) {
      m.process?.child.kill('SIGCONT');
      await m.stop();
    }
    await store?.dispose();
  });

  it('one leader serves, a standby takes over a paused leader, and the old leader is fenced', async () => {
    const a = await replica('replica-a', 'ready');
    const first = await a.c.put({ key: b('/le/a'), value: b('1') });
    const bb = await replica('replica-b', 'live');
    assert.equal(await bb.m.isReady(), false, 'the standby is not ready');
    await assert.rejects(bb.c.put({ key: b('/le/nope'), value: b('x') }), 'the standby does not serve the etcd API');

    // pause the leader past its lease: the standby takes over
    a.m.process!.child.kill('SIGSTOP');
    const pausedPut = a.c.put({ key: b('/le/while-paused'), value: b('x') }).then(
      () => 'committed',
      (err: Error) => err.message,
    );
    await waitUntil('the standby to take over', async () => ((await bb.m.isReady()) ? true : undefined), { timeoutMs: 30_000 });
    const second = await firstWrite(bb.c, '/le/b', '2');
    assert.ok(BigInt(second.header.revision) > BigInt(first.header.revision), 'revisions continue above the old leader\'s');

    // wake the old leader: its queued write must not commit, and it steps down
    a.m.process!.child.kill('SIGCONT');
    const outcome = await pausedPut;
    assert.notEqual(outcome, 'committed', 'a deposed leader commits nothing');
    const exit = await a.m.process!.exited;
    assert.equal(exit.code, 1, 'the deposed leader exits non-zero');
    assert.match(a.m.process!.tail(), /lost the leader lease/);

    const all = await bb.c.range({ key: b('/le/'), range_end: b('/le0') });
    assert.deepEqual(all.kvs.map((kv) => kv.key.toString()), ['/le/a', '/le/b']);
  });

  it('a leader that stops hands over at once, and the new one continues the revisions', async () => {
    const bb = { m: replicas[1]!, c: clients[clients.length - 1]! };
    const before = await bb.c.put({ key: b('/le/c'), value: b('3') });
    const cc = await replica('replica-c', 'live');
    assert.equal(await cc.m.isReady(), false);
    await bb.m.stop();
    await waitUntil('the next replica to take over', async () => ((await cc.m.isReady()) ? true : undefined), { timeoutMs: 30_000 });
    const after = await firstWrite(cc.c, '/le/d', '4');
    assert.ok(BigInt(after.header.revision) > BigInt(before.header.revision));
    const all = await cc.c.range({ key: b('/le/'), range_end: b('/le0') });
    assert.deepEqual(all.kvs.map((kv) => kv.key.toString()), ['/le/a', '/le/b', '/le/c', '/le/d']);
  });
});

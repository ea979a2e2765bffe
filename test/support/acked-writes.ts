/**
 * What writers that ran through an outage or a crash must leave behind: every acknowledged write stored with
 * its value and revision, no two stored keys at one revision, and a watch opened before the writers that
 * delivered exactly the stored keys, in revision order, each once.
 */
import assert from 'node:assert/strict';
import type * as T from './etcd-types.js';
import type { EtcdClient } from './grpc.js';
import type { WatchStream } from './watch-stream.js';

/** Acknowledged writes by key: the value written and the revision of its response. */
export type AckedWrites = Map<string, { value: string; revision: bigint }>;

/** Asserts the above for the keys of `range`; returns what the range holds. */
export async function assertAckedWritesKept(
  client: EtcdClient,
  range: { key: Buffer; range_end: Buffer },
  acked: AckedWrites,
  watch: { stream: WatchStream; id: T.Int64; timeoutMs?: number },
): Promise<T.RangeResponse> {
  const all = await client.range(range);
  const stored = new Map(all.kvs.map((kv) => [kv.key.toString(), kv]));
  for (const [key, a] of acked) {
    const kv = stored.get(key);
    assert.ok(kv, `acknowledged ${key} is stored`);
    assert.deepEqual([kv.value.toString(), BigInt(kv.mod_revision)], [a.value, a.revision], `acknowledged ${key}: value and revision`);
  }
  const revisions = all.kvs.map((kv) => kv.mod_revision);
  assert.equal(new Set(revisions).size, revisions.length, 'no two keys share a revision');
  const events = await watch.stream.waitForEvents(watch.id, all.kvs.length, watch.timeoutMs);
  const seen = events.map((e) => BigInt(e.kv!.mod_revision));
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! > seen[i - 1]!, 'watch events in revision order, each once');
  assert.deepEqual(events.map((e) => e.kv!.key.toString()).sort(), [...stored.keys()].sort(), 'watch events are exactly the keys stored');
  return all;
}

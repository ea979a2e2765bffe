/**
 * A chain of etcd transactions applied strictly in order, each awaited before the next is sent, each in an
 * etcd revision of its own, guarded by the commit head (`harikube/head`, layout.ts): step i compares the
 * head with the token of step i-1 and sets it to its own.
 *
 * Why the guard: a write still in flight from a failed attempt (the caller gave up on it, the etcd applies
 * it later) finds the head moved and changes nothing, so it can never apply after the middleware moved on.
 * Why one at a time: a commit is normally one etcd transaction (etcd-backend.ts groups a batch's global
 * revisions); the chains of several are rare (a batch larger than one transaction, a large revert). Sent
 * together, etcd reorders them and most are resent (measured: about 1.5 resent per applied one, 4 rounds
 * per batch), which costs more than the round trips it saves.
 */
import { BackendUnavailableError } from '../backend.js';
import type { EtcdClient } from './client.js';
import { HEAD_KEY } from './layout.js';
import { etcdBackendMetrics } from './metrics.js';
import type { Op } from './txn-ops.js';

export interface ChainStep {
  ops: Op[];
  /** The head's value once this step applied: unique to the step (see layout.ts). */
  token: string;
}

/** The guard of a step that follows `head` (undefined: the head key does not exist yet). */
function headIs(head: string | undefined): Record<string, unknown> {
  if (head === undefined) return { key: HEAD_KEY, target: 'Version', result: 'Equal', version: '0' };
  return { key: HEAD_KEY, target: 'Value', result: 'Equal', value: Buffer.from(head) };
}

/**
 * Applies `steps` in order after the head `head`, one etcd transaction each, each awaited; returns the etcd
 * revision of each. Throws `BackendUnavailableError` when a call fails (the steps before it applied, it may
 * have too: the caller reads the map again) or when the head is not where the chain expects it (something
 * else wrote the etcd).
 */
export async function applyChain(client: EtcdClient, head: string | undefined, steps: ChainStep[], description: string): Promise<number[]> {
  const revisions: number[] = [];
  let after = head;
  for (const s of steps) {
    const res = await client.txn({ compare: [headIs(after)], success: [...s.ops, { request_put: { key: HEAD_KEY, value: Buffer.from(s.token) } }], failure: [] });
    if (!res.succeeded) {
      throw new BackendUnavailableError(
        `${description}: the commit head ${HEAD_KEY.toString()} is not ${after === undefined ? 'absent' : `"${after}"`} as this middleware left it: something else wrote the etcd (another middleware, or a write of a failed attempt that applied late); the write fails and the revision map is read again`,
      );
    }
    revisions.push(Number(res.header.revision));
    etcdBackendMetrics.commitRounds.inc({ backend: description });
    etcdBackendMetrics.commitTxns.inc({ backend: description, result: 'applied' });
    after = s.token;
  }
  return revisions;
}

/**
 * A chain of etcd transactions sent without waiting for each other (pipelined), yet applied strictly in
 * order, each in an etcd revision of its own.
 *
 * Why: a group-commit batch writes one etcd transaction per global revision (the revision map needs an
 * etcd revision per global one, see layout.ts). Awaiting each costs a round trip and an fsync per
 * revision; sent together, etcd's raft proposes them in few batches, one log fsync each (a child
 * middleware through this adapter commits them in one group commit). The order is kept by the commit head
 * (`harikube/head`): step i compares the head with the token of step i-1 and sets it to its own. Requests
 * on separate streams may be handled out of order; a step that arrives before its predecessor fails its
 * compare, changes nothing, and is sent again once the predecessor is known to have applied.
 */
import { BackendUnavailableError } from '../backend.js';
import type { EtcdClient, EtcdTxnResponse } from './client.js';
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
 * Applies `steps` in order after the head `head`; returns the etcd revision of each. Every round sends the
 * steps not yet applied at once and waits for all their answers; the applied ones are always a prefix
 * (a step applies only after its predecessor), so each round applies at least its first step or fails:
 * at most `steps.length` rounds. Throws `BackendUnavailableError` when a call fails (the steps before it
 * may have applied: the caller reads the map again) or when the head is not where the chain started from
 * (something else wrote the etcd).
 */
export async function applyChain(
  client: EtcdClient,
  head: string | undefined,
  steps: ChainStep[],
  description: string,
): Promise<number[]> {
  const revisions: number[] = [];
  let after = head;
  while (revisions.length < steps.length) {
    const round = steps.slice(revisions.length);
    const answers = await Promise.allSettled(
      round.map((s, i) => client.txn({ compare: [headIs(i === 0 ? after : round[i - 1]!.token)], success: [...s.ops, { request_put: { key: HEAD_KEY, value: Buffer.from(s.token) } }], failure: [] })),
    );
    const failed = answers.find((a) => a.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const results = answers.map((a) => (a as PromiseFulfilledResult<EtcdTxnResponse>).value);
    const firstUnapplied = results.findIndex((r) => !r.succeeded);
    const upTo = firstUnapplied < 0 ? results.length : firstUnapplied;
    if (upTo === 0) {
      throw new BackendUnavailableError(
        `${description}: the commit head ${HEAD_KEY.toString()} is not ${after === undefined ? 'absent' : `"${after}"`} as this middleware left it: something else wrote the etcd (another middleware, or a write of a failed attempt that applied late); the write fails and the revision map is read again`,
      );
    }
    if (results.slice(upTo).some((r) => r.succeeded)) {
      // a step applied after one that did not: two steps shared a token
      throw new Error(`${description}: commit chain applied out of order (steps ${upTo} and later of ${round.length}); the revision map is read again`);
    }
    for (let i = 0; i < upTo; i++) revisions.push(Number(results[i]!.header.revision));
    etcdBackendMetrics.commitRounds.inc({ backend: description });
    etcdBackendMetrics.commitTxns.inc({ backend: description, result: 'applied' }, upTo);
    if (upTo < results.length) etcdBackendMetrics.commitTxns.inc({ backend: description, result: 'resent' }, results.length - upTo);
    after = round[upTo - 1]!.token;
  }
  return revisions;
}

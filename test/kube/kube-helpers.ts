/** Small helpers shared by the kube-apiserver tests. */
import assert from 'node:assert/strict';
import { b } from '../support/bytes.js';
import type { EtcdClient } from '../support/grpc.js';
import type { KubeApiServer } from '../support/kube-apiserver.js';
import { ROUTED_GROUP } from '../support/kube-stack.js';
import { waitUntil } from '../support/wait.js';

/** kube-apiserver's compactor keeps its logical compaction clock in this key (etcd3/compact.go). */
const COMPACT_REV_KEY = 'compact_rev_key';

/**
 * Compacts at the current revision the way a kube-apiserver's compactor does: bump compact_rev_key's version
 * with a compare-and-swap whose value names the revision, then Compact. API servers watching that key learn
 * the compaction revision from it. Returns the revision compacted at.
 */
export async function compactLikeKubeApiServer(etcd: EtcdClient): Promise<bigint> {
  const cur = await etcd.range({ key: b(COMPACT_REV_KEY) });
  const version = cur.kvs[0]?.version ?? '0';
  const rev = BigInt(cur.header.revision);
  const txn = await etcd.txn({
    compare: [{ result: 'Equal', target: 'Version', key: b(COMPACT_REV_KEY), version }],
    success: [{ request_put: { key: b(COMPACT_REV_KEY), value: b(String(rev)) } }],
  });
  assert.ok(txn.succeeded, 'the compact_rev_key compare-and-swap succeeded');
  await etcd.compact(String(rev));
  return rev;
}

/** Awaits a client-node call expected to fail with this HTTP code and Status reason. */
export async function expectApiError(call: Promise<unknown>, code: number, reason: string): Promise<void> {
  try {
    await call;
  } catch (e: any) {
    assert.equal(e.code, code, `HTTP ${code} expected, got ${e.code}: ${e.message}`);
    const body = typeof e.body === 'string' ? JSON.parse(e.body) : e.body;
    assert.equal(body?.reason, reason, `reason ${reason}: ${JSON.stringify(body)}`);
    return;
  }
  assert.fail(`expected HTTP ${code} ${reason}, but the call succeeded`);
}

/** A namespaced CRD `widgets.<ROUTED_GROUP>` (kind Widget, v1, spec.size integer). */
export function widgetCrdYaml(group = ROUTED_GROUP): string {
  return `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.${group}
spec:
  group: ${group}
  scope: Namespaced
  names: { plural: widgets, singular: widget, kind: Widget, listKind: WidgetList }
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: { type: integer }
`;
}

/**
 * `kubectl wait --for=condition=... TARGET`, retried until it succeeds: kubectl wait fails at once instead of
 * waiting when the object has no status.conditions yet (a CRD or TopologyConfig just created).
 */
export async function kubectlWait(api: KubeApiServer, condition: string, target: string[], timeoutMs = 60_000): Promise<void> {
  await waitUntil(
    `kubectl wait --for=condition=${condition} ${target.join(' ')}`,
    () => api.kubectl(['wait', `--for=condition=${condition}`, '--timeout=10s', ...target]).then(() => true),
    { timeoutMs, intervalMs: 250 },
  );
}

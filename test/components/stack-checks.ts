/**
 * Checks every stack test applies to its whole resource graph: secrecy and Kubernetes schema validity.
 */
import assert from 'node:assert/strict';
import { containsSecret, strings, validateManifests, type Harness } from './harness.js';

/** Counts of registered resources by type. */
export function countByType(h: Harness): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of h.resources) counts[r.type] = (counts[r.type] ?? 0) + 1;
  return counts;
}

/**
 * No credential (the mocks' random values, and any endpoint carrying one) in the inputs of anything but a
 * Secret or the random resources themselves; Secret data always a Pulumi secret; workloads and ConfigMaps
 * never secret.
 */
export function assertSecrecy(h: Harness, endpointsWithCredentials: string[]): void {
  const secretTexts = [...h.credentials, ...endpointsWithCredentials];
  assert.ok(h.credentials.length > 0, 'the stack generated credentials');
  for (const r of h.resources) {
    if (r.type === 'kubernetes:core/v1:Secret' || r.type.startsWith('random:')) continue;
    const texts = strings(r.plain);
    for (const s of secretTexts) assert.ok(!texts.some((t) => t.includes(s)), `${r.type} ${r.name} holds credential text`);
  }
  for (const r of h.ofType('kubernetes:core/v1:Secret')) {
    const data = r.inputs.stringData ?? r.inputs.data;
    assert.ok(data && containsSecret(data), `Secret ${r.name}: data is not a Pulumi secret`);
  }
  for (const type of ['kubernetes:apps/v1:Deployment', 'kubernetes:apps/v1:StatefulSet', 'kubernetes:core/v1:ConfigMap', 'kubernetes:networking.k8s.io/v1:NetworkPolicy', 'kubernetes:core/v1:Service']) {
    for (const r of h.ofType(type)) assert.equal(containsSecret(r.inputs), false, `${type} ${r.name} has secret inputs`);
  }
}

/** Every built-in object validates against the Kubernetes schema; returns the counts. */
export async function assertManifestsValid(h: Harness): Promise<Record<string, number>> {
  return validateManifests(h.resources);
}

/** Every resource but the root component has a parent that is a registered component. */
export function assertEverythingParented(h: Harness, rootType: string): void {
  const urns = new Set(h.resources.map((r) => r.urn));
  for (const r of h.resources) {
    if (r.type === rootType) continue;
    assert.ok(r.parent && urns.has(r.parent), `${r.type} ${r.name} is not parented to a component`);
  }
}

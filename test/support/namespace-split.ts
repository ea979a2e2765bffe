/**
 * Keys of the resource prefix the routed target's namespace rule splits (targets.ts, SPLIT_RESOURCE), and the
 * check that the split is physical: on the routed target each key is read back from the database its rule
 * names, and from that one only. On the other targets the same keys simply live in their one store.
 */
import assert from 'node:assert/strict';
import { storedKeys } from './stored-keys.js';
import { SPLIT_NAMESPACE, SPLIT_RESOURCE, type RunningServer } from './targets.js';

/** Every key of the split resource, whatever its namespace: `/registry/configmaps/`. */
export const SPLIT_PREFIX = `/registry/${SPLIT_RESOURCE}/`;

/**
 * `/registry/configmaps/<namespace>/<name>`. `name` must end in an upper-case letter, which none of the
 * routed target's key rules matches: then the namespace alone decides where the key goes.
 */
export function splitKey(namespace: string, name: string): string {
  if (!/[A-Z]$/.test(name)) throw new Error(`splitKey: "${name}" must end in an upper-case letter (the routed target's key rules route by the last character)`);
  return `${SPLIT_PREFIX}${namespace}/${name}`;
}

/**
 * On the routed target: asserts that the keys of namespace ns-a are stored in the namespace rule's
 * PostgreSQL database and not in the default SQLite, that the other keys are stored in the default SQLite
 * and not in PostgreSQL, and that both sides hold some (the split is real). Deleted keys count: a tombstone
 * is stored where its key lives. A no-op on every other target.
 */
export async function assertSplitStored(server: RunningServer, keys: readonly string[]): Promise<void> {
  if (!server.backends) return;
  const inNamespace = new Set(await storedKeys(server.backends[SPLIT_NAMESPACE]));
  const inDefault = new Set(await storedKeys(server.backends.default));
  const mine = keys.filter((k) => k.startsWith(`${SPLIT_PREFIX}${SPLIT_NAMESPACE}/`));
  const rest = keys.filter((k) => !mine.includes(k));
  assert.ok(mine.length > 0 && rest.length > 0, `the keys must fall on both sides of the split (${mine.length} in ${SPLIT_NAMESPACE}, ${rest.length} elsewhere)`);
  for (const k of mine) {
    assert.ok(inNamespace.has(k), `${k} is not in the PostgreSQL database of the namespace rule`);
    assert.ok(!inDefault.has(k), `${k} is also in the default SQLite`);
  }
  for (const k of rest) {
    assert.ok(inDefault.has(k), `${k} is not in the default SQLite`);
    assert.ok(!inNamespace.has(k), `${k} is also in the PostgreSQL database of the namespace rule`);
  }
}

/** The KV rows: puts, single-key gets, kube-style CAS updates and kube-style paged lists. */
import { keyOf, loadKeys, rangeOf, VALUE_256 } from './data.js';
import type { LoopBounds } from './loop.js';
import { closedLoopRow, type Workload } from './workload.js';

/** Puts of new, distinct keys (each op creates a key, like kube creates). */
export function putRow(clients: number, bounds: Omit<LoopBounds, 'clients'>): Workload {
  return closedLoopRow({
    name: `put-${clients}`,
    what: `Put of a new key (256 B value), ${clients} concurrent client(s)`,
    latencyRow: clients === 1,
    bounds: { ...bounds, clients },
    setup: async (pool, prefix) => (phase) => (client, seq) =>
      pool.of(client).put({ key: keyOf(`${prefix}${phase}/`, seq), value: VALUE_256 }).then(() => undefined),
  });
}

/** Linearizable single-key Range (kube's default GET) of random keys among `keys` preloaded. */
export function getRow(clients: number, bounds: Omit<LoopBounds, 'clients'>, keys = 1_000): Workload {
  return closedLoopRow({
    name: `get-${clients}`,
    what: `Range of one existing key (of ${keys}), ${clients} concurrent client(s)`,
    latencyRow: clients === 1,
    bounds: { ...bounds, clients },
    setup: async (pool, prefix) => {
      await loadKeys(pool, prefix, keys, VALUE_256);
      return () => async (client) => {
        const res = await pool.of(client).range({ key: keyOf(prefix, Math.floor(Math.random() * keys)) });
        if (res.kvs.length !== 1) throw new Error(`get: expected 1 kv, got ${res.kvs.length}`);
      };
    },
  });
}

/**
 * kube-apiserver's update: `[MOD(k)==rev] -> [Put k] else [Range k]`, each client updating its own key and
 * carrying the revision the previous update returned (so every compare passes, as in a quiet cluster).
 */
export function casTxnRow(clients: number, bounds: Omit<LoopBounds, 'clients'>): Workload {
  return closedLoopRow({
    name: `txn-${clients}`,
    what: `CAS update Txn [MOD(k)==rev] -> [Put] else [Range k], ${clients} clients on distinct keys`,
    bounds: { ...bounds, clients },
    setup: async (pool, prefix) => {
      await loadKeys(pool, prefix, clients, VALUE_256);
      const revs: string[] = [];
      for (let c = 0; c < clients; c++) {
        const res = await pool.of(c).range({ key: keyOf(prefix, c) });
        revs.push(res.kvs[0]!.mod_revision);
      }
      return () => async (client) => {
        const key = keyOf(prefix, client);
        const res = await pool.of(client).txn({
          compare: [{ result: 'Equal', target: 'Mod', key, mod_revision: revs[client]! }],
          success: [{ request_put: { key, value: VALUE_256 } }],
          failure: [{ request_range: { key } }],
        });
        if (!res.succeeded) throw new Error(`txn: compare failed on ${key.toString()} (rev ${revs[client]})`);
        revs[client] = res.header.revision;
      };
    },
  });
}

/**
 * kube-apiserver's paged LIST: first page `limit` at the current revision, then continue from the last key
 * at the first page's revision (pinned snapshot), until `more` is false. One op = the whole list.
 */
export function pagedListRow(clients: number, bounds: Omit<LoopBounds, 'clients'>, keys = 500, pageSize = 100): Workload {
  return closedLoopRow({
    name: `list-${keys}`,
    what: `paged list of ${keys} keys, pages of ${pageSize} pinned to the first page's revision, ${clients} clients`,
    bounds: { ...bounds, clients },
    setup: async (pool, prefix) => {
      await loadKeys(pool, prefix, keys, VALUE_256);
      const { key: start, range_end } = rangeOf(prefix);
      return () => async (client) => {
        const conn = pool.of(client);
        let key = start;
        let revision: string | undefined;
        let seen = 0;
        for (let page = 0; page <= keys / pageSize + 1; page++) {
          const res = await conn.range({ key, range_end, limit: pageSize, ...(revision ? { revision } : {}) });
          revision ??= res.header.revision;
          seen += res.kvs.length;
          if (!res.more) break;
          // continue strictly after the last key returned, as kube's continue token does
          key = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
        }
        if (seen !== keys) throw new Error(`list: expected ${keys} keys, got ${seen}`);
      };
    },
  });
}

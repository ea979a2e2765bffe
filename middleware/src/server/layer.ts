/**
 * The layer service a middleware offers its parent (backends/middleware/layer-protocol.ts has the protocol,
 * docs/architecture.md "Layers" the design): reads pass straight to this middleware's storage at the
 * parent's revisions; writes, compaction, reverts, recovery and the copies and drops of the parent's online
 * migration (layer-moves.ts) go through child mode (mvcc/child-layer.ts), which checks that the caller is
 * the parent that claimed this middleware.
 */
import * as grpc from '@grpc/grpc-js';
import type { Backend, KeyRow } from '../backends/backend.js';
import type { KeyMoves } from '../backends/movable.js';
import { META } from '../backends/meta.js';
import { PARENT_METADATA, layerServiceDefinition, type LayerMethod, type LayerMethods } from '../backends/middleware/layer-protocol.js';
import { errChildLayer } from '../mvcc/errors.js';
import type { Store } from '../mvcc/store.js';
import { storageError } from '../mvcc/storage-error.js';
import { logger } from '../log.js';
import { capHistory, ownMoves, rangeWithTombstones } from './layer-moves.js';
import { countStreamRequest } from './rpc.js';
import { toServiceError } from './errors.js';

export { layerServiceDefinition };

/** The storage's migration operations; refused (FAILED_PRECONDITION) with the reason when it has none. */
function movesOf(b: Backend): KeyMoves {
  const moves = ownMoves(b);
  if (typeof moves === 'string') throw errChildLayer(`keys cannot move into or out of this child layer: ${moves}`);
  return moves;
}

type Handlers = { [M in LayerMethod]: (req: LayerMethods[M][0], caller: string) => Promise<LayerMethods[M][1]> };

const log = logger.child({ component: 'layer' });

export function layerService(store: Store): grpc.UntypedServiceImplementation {
  const b = store.backend;
  const handlers: Handlers = {
    Hello: async () => {
      const moves = ownMoves(b);
      return { clusterId: store.clusterId, parent: store.child.parent ?? '', maxRevision: await b.maxRevision(), enveloped: await store.child.enveloped(), movesRefused: typeof moves === 'string' ? moves : '' };
    },
    Range: async (q) => ({ rows: await b.range(q) }),
    // in a transaction that writes nothing: its reads are direct (no read thread), one after the other
    Latest: async (q) => {
      const tx = await b.begin();
      try {
        const rows: (KeyRow | null)[] = [];
        for (const key of q.keys) {
          const row = await tx.latest(key);
          rows.push(row && (q.tombstones || !row.deleted) ? row : null);
        }
        return { rows };
      } finally {
        await tx.rollback();
      }
    },
    Count: async (q) => ({ count: await b.count(q.start, q.end, q.revision) }),
    Changes: async (q) => ({ rows: await b.changes(q.from, q.to, q.limit) }),
    MaxRevision: async () => ({ revision: await b.maxRevision() }),
    // the parent's owner meta of this backend is the child's claim
    GetMeta: async (q) => {
      if (q.name !== META.owner) throw errChildLayer(`the parent asked for meta value "${q.name}": a child layer keeps only its owner`);
      return store.child.parent === undefined ? {} : { value: Buffer.from(store.child.parent) };
    },
    LeasedKeys: async () => ({ keys: await b.leasedKeys() }),
    SizeBytes: async () => ({ bytes: await b.sizeBytes() }),
    Write: async (req, caller) => {
      let claim: string | undefined;
      for (const m of req.meta) {
        if (m.name !== META.owner) throw errChildLayer(`the parent set meta value "${m.name}": a child layer keeps only its owner`);
        claim = m.value.toString();
      }
      const readAhead = await store.child.write(caller, req.rows, claim, req.readAhead);
      return req.readAhead ? { readAhead } : {};
    },
    Compact: (req, caller) => store.child.compact(caller, req.revision, req.batchSize, req.deadline),
    Revert: async (req, caller) => {
      await store.child.revert(caller, req.from, req.to);
      return {};
    },
    Recover: async (_req, caller) => {
      await store.child.recover(caller);
      return {};
    },
    // online migration: reads straight from this middleware's storage, copies and drops as the parent's
    RangeWithTombstones: async (q) => ({ rows: await rangeWithTombstones(b, q) }),
    History: async (q) => ({ rows: capHistory(await movesOf(b).history(q.start, q.end, q.limitRows)) }),
    CopyIn: async (req, caller) => {
      const moves = movesOf(b);
      return { stored: await store.child.moveStep(caller, () => moves.copyIn(req.rows)) };
    },
    DropOut: async (req, caller) => {
      const moves = movesOf(b);
      return { deleted: await store.child.moveStep(caller, () => moves.dropOut(req.keys, req.upTo)) };
    },
  };
  const out: grpc.UntypedServiceImplementation = {};
  for (const [name, fn] of Object.entries(handlers) as [LayerMethod, (req: unknown, caller: string) => Promise<unknown>][]) {
    out[name] = ((call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const caller = String(call.metadata.get(PARENT_METADATA)[0] ?? '');
      Promise.resolve()
        .then(() => fn(call.request, caller))
        .then(
          (res) => {
            countStreamRequest(`Layer.${name}`);
            callback(null, res);
          },
          (err: unknown) => {
            const e = toServiceError(storageError(err, log));
            countStreamRequest(`Layer.${name}`, grpc.status[e.code ?? grpc.status.UNKNOWN] ?? 'UNKNOWN');
            callback(e, null);
          },
        );
    }) as grpc.handleUnaryCall<unknown, unknown>;
  }
  return out;
}

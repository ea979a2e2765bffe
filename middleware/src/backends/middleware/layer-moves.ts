/**
 * A child middleware as the source or target of the parent's online migration (backends/movable.ts). The
 * child stores rows at the parent's revisions as they are, so each operation is one layer call the child
 * serves from its own storage (server/layer-moves.ts). Copies and drops are the parent's changes to the
 * child: they carry its cluster ID, and they wait for the parent's write transaction on the child in
 * progress, as a SQL backend's do.
 */
import type { KeyRow, RangeQuery } from '../backend.js';
import type { Lock } from '../sql/lock.js';
import type { KeyMoves } from '../movable.js';
import type { WrittenKeys } from '../written-keys.js';
import type { LayerClient } from './layer-client.js';
import { MAX_HANDED_DOWN_BYTES, handedDownBytes } from './layer-protocol.js';

export class LayerMoves implements KeyMoves {
  constructor(
    /** The client, with this parent's cluster ID to send. */
    private readonly client: () => Promise<LayerClient>,
    /** The backend's write lock (one write transaction at a time). */
    private readonly writeLock: Lock,
    /** The keys the child may hold rows of: a copy adds its keys before it is sent. */
    private readonly written: WrittenKeys,
  ) {}

  async rangeWithTombstones(q: RangeQuery): Promise<KeyRow[]> {
    return (await (await this.client()).call('RangeWithTombstones', q)).rows;
  }

  async history(start: Buffer, end: Buffer, limitRows: number): Promise<KeyRow[]> {
    return (await (await this.client()).call('History', { start, end, limitRows })).rows;
  }

  /**
   * Sends the rows in calls of at most MAX_HANDED_DOWN_BYTES, each one transaction of the child. Not one
   * transaction in all, but the mover needs no more: a copy interrupted half way is finished by the next
   * attempt (rows already there are skipped), and the source's rows are dropped only after every call.
   */
  async copyIn(rows: KeyRow[]): Promise<number> {
    if (rows.length === 0) return 0;
    for (const r of rows) this.written.add(r.key);
    const c = await this.client();
    return this.writeLock.run(async () => {
      let stored = 0;
      let chunk: KeyRow[] = [];
      let bytes = 0;
      for (const row of rows) {
        if (chunk.length > 0 && bytes + handedDownBytes(row) > MAX_HANDED_DOWN_BYTES) {
          stored += (await c.call('CopyIn', { rows: chunk })).stored;
          chunk = [];
          bytes = 0;
        }
        chunk.push(row);
        bytes += handedDownBytes(row);
      }
      stored += (await c.call('CopyIn', { rows: chunk })).stored;
      return stored;
    });
  }

  async dropOut(keys: Buffer[], upTo: number): Promise<number> {
    if (keys.length === 0) return 0;
    const c = await this.client();
    return this.writeLock.run(async () => (await c.call('DropOut', { keys, upTo })).deleted);
  }
}

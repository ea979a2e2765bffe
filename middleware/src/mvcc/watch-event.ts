/** A committed change as watchers see it (etcd's mvccpb.Event): the store publishes it, the watch hub fans it out. */
import type { KeyRow } from '../backends/backend.js';
import type { KeyValue } from './api.js';
import { rowToKeyValue } from './key-value.js';

export class WatchEvent {
  /**
   * The server's encodings of this event, without and with prev_kv (server/wire.ts): kept with the event so
   * one encoding serves every watcher. Nothing in mvcc reads them.
   */
  encodedPlain?: Buffer;
  encodedWithPrev?: Buffer;

  constructor(
    readonly type: 'Put' | 'Delete',
    readonly kv: KeyValue,
    readonly prevKv: KeyValue | undefined,
    readonly revision: number,
    readonly sub: number,
  ) {}

  get key(): Buffer {
    return this.kv.key;
  }

  static fromRow(row: KeyRow, prev: KeyRow | undefined): WatchEvent {
    return new WatchEvent(
      row.deleted ? 'Delete' : 'Put',
      rowToKeyValue(row),
      prev && !prev.deleted ? rowToKeyValue(prev) : undefined,
      row.modRevision,
      row.sub,
    );
  }
}

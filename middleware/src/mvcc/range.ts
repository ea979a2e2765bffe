/**
 * The parts of an etcd Range that happen after the rows are read: revision filters, sorting, limit,
 * `more` and `count`, keys_only and count_only. Shared by the Range RPC and ranges inside transactions.
 */
import type { KeyRow } from '../backends/backend.js';
import { num, type RangeRequest, type RangeResponse, type ResponseHeader, type SortOrder } from './api.js';
import { rowToKeyValue } from './key-value.js';

/** The sort order etcd applies: a non-key target with no order sorts ascending. */
export function effectiveSortOrder(req: RangeRequest): SortOrder {
  const order = req.sort_order ?? 'None';
  return (req.sort_target ?? 'Key') !== 'Key' && order === 'None' ? 'Ascend' : order;
}

function hasFilters(req: RangeRequest): boolean {
  return (
    num(req.min_mod_revision) > 0 ||
    num(req.max_mod_revision) > 0 ||
    num(req.min_create_revision) > 0 ||
    num(req.max_create_revision) > 0
  );
}

/** True when rows must all be read before the limit can be applied (sorting by other than key order, filters). */
export function needsFullRead(req: RangeRequest): boolean {
  const order = effectiveSortOrder(req);
  const keyOrder = (req.sort_target ?? 'Key') === 'Key' && (order === 'None' || order === 'Ascend');
  return !keyOrder || hasFilters(req);
}

function sortKey(req: RangeRequest, row: KeyRow): number | Buffer {
  switch (req.sort_target ?? 'Key') {
    case 'Version':
      return row.version;
    case 'Create':
      return row.createRevision;
    case 'Mod':
      return row.modRevision;
    case 'Value':
      return row.value;
    case 'Key':
      return row.key;
  }
}

function cmp(a: number | Buffer, b: number | Buffer): number {
  return typeof a === 'number' ? a - (b as number) : Buffer.compare(a, b as Buffer);
}

/**
 * Builds the response from rows in key order. `total` is the number of keys in the range at the read
 * revision (etcd's `count`: before filters and limit).
 */
export function finishRange(req: RangeRequest, rows: KeyRow[], total: number, header: ResponseHeader): RangeResponse {
  if (req.count_only) return { header, kvs: [], more: false, count: total };
  let out = rows;
  if (hasFilters(req)) {
    const minMod = num(req.min_mod_revision);
    const maxMod = num(req.max_mod_revision);
    const minCreate = num(req.min_create_revision);
    const maxCreate = num(req.max_create_revision);
    out = out.filter(
      (r) =>
        (!minMod || r.modRevision >= minMod) &&
        (!maxMod || r.modRevision <= maxMod) &&
        (!minCreate || r.createRevision >= minCreate) &&
        (!maxCreate || r.createRevision <= maxCreate),
    );
  }
  const order = effectiveSortOrder(req);
  if (order !== 'None' && !((req.sort_target ?? 'Key') === 'Key' && order === 'Ascend')) {
    const sign = order === 'Descend' ? -1 : 1;
    out = [...out].sort((a, b) => sign * cmp(sortKey(req, a), sortKey(req, b)));
  }
  const limit = num(req.limit);
  let more = false;
  if (limit > 0 && out.length > limit) {
    out = out.slice(0, limit);
    more = true;
  }
  return { header, kvs: out.map((r) => rowToKeyValue(r, req.keys_only)), more, count: total };
}

interface PageCount {
  end: Buffer;
  revision: number;
  /** Starts in (after, upTo] have `count` keys in [start, end). */
  after: Buffer;
  upTo: Buffer;
  count: number;
}

/**
 * etcd's `count` of a continued page without counting again. A page that read limit + 1 keys k1 < ... <
 * k(limit+1) of [start, end) at revision R, whose count was C, shows that the keys of [s, end) for any s in
 * (k(limit), k(limit+1)] are those of [start, end) but k1..k(limit): C - limit of them. The continue key of
 * kube-apiserver and etcdctl (last key returned + "\0") falls in that interval. A snapshot at or below the
 * watermark never changes (compaction removes only rows that no read at or above its revision sees, and
 * reads below it are refused), so the count derived is exactly what counting again would give.
 */
export class PageCounts {
  private readonly entries: PageCount[] = [];
  private next = 0;

  /** Bounded: concurrent paged lists each need one entry at a time. */
  constructor(private readonly capacity = 64) {}

  /** The count of [start, end) at `revision` if an earlier page determined it. */
  lookup(start: Buffer, end: Buffer, revision: number): number | undefined {
    for (const e of this.entries) {
      if (e.revision === revision && Buffer.compare(start, e.after) > 0 && Buffer.compare(start, e.upTo) <= 0 && e.end.equals(end)) return e.count;
    }
    return undefined;
  }

  /** Records what a page that read `rows` (more than `limit`, in key order) with count `total` shows. */
  remember(end: Buffer, revision: number, rows: KeyRow[], limit: number, total: number): void {
    const after = rows[limit - 1]!.key;
    const upTo = rows[limit]!.key;
    if (this.lookup(upTo, end, revision) !== undefined) return;
    // Copies: the rows' keys may be views of a much larger buffer that the cache must not keep alive.
    const entry = { end: Buffer.from(end), revision, after: Buffer.from(after), upTo: Buffer.from(upTo), count: total - limit };
    this.entries[this.next] = entry;
    this.next = (this.next + 1) % this.capacity;
  }
}

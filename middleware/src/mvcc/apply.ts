/**
 * etcd's write semantics applied inside one backend transaction: compares, puts, range deletes, reads and
 * nested transactions. Validation happens before the first row is written, so a rejected request leaves
 * nothing behind; a revision is allocated only when a request really writes (failed compares, reads and
 * deletes of nothing never consume one). All rows of one request share one revision (etcd's sub-revisions
 * order them).
 */
import type { KeyRow, WriteTxn } from '../backends/backend.js';
import {
  id,
  num,
  type Compare,
  type DeleteRangeRequest,
  type DeleteRangeResponse,
  type PutRequest,
  type PutResponse,
  type RangeRequest,
  type RangeResponse,
  type RequestOp,
  type ResponseHeader,
  type ResponseOp,
  type TxnRequest,
  type TxnResponse,
} from './api.js';
import { errKeyNotFound, errLeaseNotFound, errLeaseProvided, errValueProvided } from './errors.js';
import { rowToKeyValue } from './key-value.js';
import { WatchEvent } from './watch-event.js';
import { rangeEnd } from './key-range.js';
import type { LeaseTable } from './leases.js';
import { finishRange } from './range.js';

/** Reads with this revision see the transaction's newest state. */
const LATEST = Number.MAX_SAFE_INTEGER;

/** The state of one request being applied: its revision (once allocated), rows and events. */
export class ApplyContext {
  rev = 0;
  /** Revisions of rows a parent layer handed down (see `insertHandedDown`), in order. */
  readonly handed: number[] = [];
  private sub = 0;
  readonly rows: KeyRow[] = [];
  readonly events: WatchEvent[] = [];
  /** In-memory changes to make once the transaction commits. */
  readonly afterCommit: (() => void)[] = [];

  constructor(
    readonly tx: WriteTxn,
    readonly leases: LeaseTable,
    /** The next revision, or exactly `at` (handed down by a parent layer). */
    private readonly allocate: (at?: number) => number,
    /** Header revision of a request that does not write (the newest revision it could observe). */
    private readonly observed: () => number,
    readonly header: (revision: number) => ResponseHeader,
  ) {}

  /** The request's revision, allocated on first use. */
  revision(): number {
    if (this.rev === 0) this.rev = this.allocate();
    return this.rev;
  }

  /** Every revision this request allocated. */
  get revisions(): number[] {
    return this.rev ? [this.rev, ...this.handed] : this.handed;
  }

  /**
   * Stores rows a parent layer wrote, at the parent's revisions (sorted by revision and sub, each above the
   * last one handed out here), with the events its own watchers see.
   */
  async insertHandedDown(rows: KeyRow[]): Promise<void> {
    for (let i = 0; i < rows.length; ) {
      const rev = rows[i]!.modRevision;
      this.handed.push(this.allocate(rev));
      let j = i;
      while (j < rows.length && rows[j]!.modRevision === rev) j++;
      const group = rows.slice(i, j);
      const prevs: (KeyRow | undefined)[] = [];
      for (const r of group) prevs.push(await this.tx.latest(r.key));
      await this.tx.insert(group);
      group.forEach((r, k) => {
        this.rows.push(r);
        const prev = prevs[k];
        this.events.push(WatchEvent.fromRow(r, prev && !prev.deleted ? prev : undefined));
      });
      i = j;
    }
  }

  /** Header for this request's responses: its own revision if it wrote, else the newest it observed. */
  responseHeader(): ResponseHeader {
    return this.header(this.rev || this.observed());
  }

  async write(row: Omit<KeyRow, 'modRevision' | 'sub'>, prev: KeyRow | undefined): Promise<void> {
    const full: KeyRow = { ...row, modRevision: this.revision(), sub: this.sub++ };
    await this.tx.insert([full]);
    this.rows.push(full);
    this.events.push(WatchEvent.fromRow(full, prev));
  }
}

function live(row: KeyRow | undefined): KeyRow | undefined {
  return row && !row.deleted ? row : undefined;
}

/** Checks what etcd checks before applying a put: the lease exists, ignore_* have something to keep. */
async function validatePut(ctx: ApplyContext, req: PutRequest): Promise<void> {
  const lease = id(req.lease);
  if (req.ignore_value && req.value && req.value.length > 0) throw errValueProvided();
  if (req.ignore_lease && lease !== '0') throw errLeaseProvided();
  if (lease !== '0' && !req.ignore_lease && !ctx.leases.has(lease)) throw errLeaseNotFound();
  if (req.ignore_value || req.ignore_lease) {
    if (!live(await ctx.tx.latest(req.key))) throw errKeyNotFound();
  }
}

async function validateOps(ctx: ApplyContext, ops: RequestOp[]): Promise<void> {
  for (const op of ops) if (op.request_put) await validatePut(ctx, op.request_put);
}

export async function applyPut(ctx: ApplyContext, req: PutRequest, validated = false): Promise<PutResponse> {
  if (!validated) await validatePut(ctx, req);
  const prev = live(await ctx.tx.latest(req.key));
  await ctx.write(
    {
      key: req.key,
      value: req.ignore_value && prev ? prev.value : (req.value ?? Buffer.alloc(0)),
      createRevision: prev ? prev.createRevision : ctx.revision(),
      prevRevision: prev ? prev.modRevision : 0,
      version: prev ? prev.version + 1 : 1,
      lease: req.ignore_lease && prev ? prev.lease : id(req.lease),
      deleted: false,
    },
    prev,
  );
  return { header: ctx.responseHeader(), ...(req.prev_kv && prev ? { prev_kv: rowToKeyValue(prev) } : {}) };
}

export async function applyDeleteRange(ctx: ApplyContext, req: DeleteRangeRequest): Promise<DeleteRangeResponse> {
  const end = rangeEnd(req.range_end);
  const victims = await ctx.tx.range({ start: req.key, end, revision: LATEST, limit: 0 });
  for (const prev of victims) {
    await ctx.write(
      {
        key: prev.key,
        value: Buffer.alloc(0),
        createRevision: prev.createRevision,
        prevRevision: prev.modRevision,
        version: 0,
        lease: '0',
        deleted: true,
      },
      prev,
    );
  }
  return {
    header: ctx.responseHeader(),
    deleted: victims.length,
    prev_kvs: req.prev_kv ? victims.map((r) => rowToKeyValue(r)) : [],
  };
}

/** A Range inside a transaction: sees the transaction's own earlier writes. */
export async function applyRangeInTxn(ctx: ApplyContext, req: RangeRequest): Promise<RangeResponse> {
  const rev = num(req.revision);
  const rows = await ctx.tx.range({ start: req.key, end: rangeEnd(req.range_end), revision: rev > 0 ? rev : LATEST, limit: 0, keysOnly: req.keys_only });
  return finishRange(req, rows, rows.length, ctx.responseHeader());
}

function compareValue(c: Compare, kv: KeyRow | undefined): number {
  // etcd compares an absent key as the zero KeyValue: version, create and mod revision 0, lease 0
  switch (c.target ?? 'Version') {
    case 'Version':
      return Math.sign((kv?.version ?? 0) - num(c.version));
    case 'Create':
      return Math.sign((kv?.createRevision ?? 0) - num(c.create_revision));
    case 'Mod':
      return Math.sign((kv?.modRevision ?? 0) - num(c.mod_revision));
    case 'Lease': {
      const a = BigInt(kv?.lease ?? '0');
      const b = BigInt(id(c.lease));
      return a === b ? 0 : a < b ? -1 : 1;
    }
    case 'Value':
      return Buffer.compare(kv?.value ?? Buffer.alloc(0), c.value ?? Buffer.alloc(0));
  }
}

function holds(c: Compare, kv: KeyRow | undefined): boolean {
  const r = compareValue(c, kv);
  switch (c.result ?? 'Equal') {
    case 'Equal':
      return r === 0;
    case 'NotEqual':
      return r !== 0;
    case 'Greater':
      return r > 0;
    case 'Less':
      return r < 0;
  }
}

async function evaluate(ctx: ApplyContext, c: Compare): Promise<boolean> {
  const end = rangeEnd(c.range_end);
  if (end === undefined) {
    const kv = live(await ctx.tx.latest(c.key));
    // a value compare needs a key to compare with (etcd: false when absent)
    if (!kv && c.target === 'Value') return false;
    return holds(c, kv);
  }
  const kvs = await ctx.tx.range({ start: c.key, end, revision: LATEST, limit: 0 });
  if (kvs.length === 0) return c.target === 'Value' ? false : holds(c, undefined);
  return kvs.every((kv) => holds(c, kv));
}

export async function applyTxn(ctx: ApplyContext, req: TxnRequest): Promise<TxnResponse> {
  let succeeded = true;
  for (const c of req.compare ?? []) {
    if (!(await evaluate(ctx, c))) {
      succeeded = false;
      break;
    }
  }
  const ops = (succeeded ? req.success : req.failure) ?? [];
  await validateOps(ctx, ops);
  const responses: ResponseOp[] = [];
  for (const op of ops) {
    if (op.request_range) responses.push({ response_range: await applyRangeInTxn(ctx, op.request_range) });
    else if (op.request_put) responses.push({ response_put: await applyPut(ctx, op.request_put, true) });
    else if (op.request_delete_range) responses.push({ response_delete_range: await applyDeleteRange(ctx, op.request_delete_range) });
    else if (op.request_txn) responses.push({ response_txn: await applyTxn(ctx, op.request_txn) });
  }
  // etcd's responses inside a transaction carry only the transaction's revision (a nested transaction's
  // header is empty); responses built before a later op allocated the revision get it here.
  const header = ctx.responseHeader();
  const inner: ResponseHeader = { cluster_id: '0', member_id: '0', revision: header.revision, raft_term: 0 };
  for (const r of responses) {
    if (r.response_txn) r.response_txn.header = { cluster_id: '0', member_id: '0', revision: 0, raft_term: 0 };
    const op = r.response_range ?? r.response_put ?? r.response_delete_range;
    if (op) op.header = inner;
  }
  return { header, succeeded, responses };
}


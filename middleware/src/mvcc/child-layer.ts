/**
 * Child mode (docs/architecture.md, "Layers"): a middleware another middleware uses as a rule backend stores
 * what its parent hands down, at the parent's global revisions, so the whole hierarchy shares one revision
 * space. The parent claims the child once (its cluster ID is kept durably in the child's meta, `parent`);
 * from then on the child serves that parent alone, takes revisions only from it (strictly increasing, never
 * one reused), and refuses writes from anyone else. Reads by the child's own clients keep working.
 */
import type { Backend, CompactResult, KeyRow } from '../backends/backend.js';
import { META } from '../backends/meta.js';
import type { Logger } from '../log.js';
import type { Compaction } from './compaction.js';
import { errChildLayer } from './errors.js';
import type { Sequencer } from './sequencer.js';
import type { WriteQueue } from './write-queue.js';

/** What an older parent left in a middleware it wrote through the etcd API (its etcd adapter's layout). */
const ENVELOPE_MAP_START = Buffer.from('harikube/revision/');
const ENVELOPE_MAP_END = Buffer.from('harikube/revision0');

export interface ChildLayerOptions {
  backend: Backend;
  seq: Sequencer;
  queue: WriteQueue;
  compaction: Compaction;
  clusterId: () => string;
  /** Called after a step that changed stored rows without publishing events (the store's read cache). */
  changedWithoutEvents: () => void;
  log: Logger;
}

export class ChildLayer {
  /** Cluster ID of the parent, once claimed. */
  private owner: string | undefined;

  constructor(private readonly o: ChildLayerOptions) {}

  /** Reads the claim kept in the meta store (at start). */
  async load(): Promise<void> {
    this.owner = (await this.o.backend.getMeta(META.parent))?.toString() || undefined;
  }

  /** The parent's cluster ID, undefined for a middleware that is no child. */
  get parent(): string | undefined {
    return this.owner;
  }

  /** Throws for a write this store would number itself (only the parent writes to a child). */
  refuseOwnWrite(): void {
    if (this.owner === undefined) return;
    throw errChildLayer(
      `this middleware is a child layer of HariKube cluster ${this.owner} and takes writes only from it, at its revisions: write through that parent`,
    );
  }

  /** True when the child holds data an older parent wrote through the etcd API (see layer-protocol.ts). */
  async enveloped(): Promise<boolean> {
    const rows = await this.o.backend.range({ start: ENVELOPE_MAP_START, end: ENVELOPE_MAP_END, revision: Number.MAX_SAFE_INTEGER, limit: 1, keysOnly: true });
    return rows.length > 0;
  }

  /**
   * Stores a transaction of the parent: `claim` (its cluster ID, when it sets the owner meta) first, then
   * its rows at their revisions, in one transaction of this child. `caller` is the cluster ID the call
   * came with. Answers the newest rows of `readAhead` (tombstones included) as that transaction leaves them.
   */
  async write(caller: string, rows: KeyRow[], claim: string | undefined, readAhead: Buffer[] = []): Promise<(KeyRow | null)[]> {
    return this.o.queue.submit(true, async (ctx) => {
      if (claim !== undefined) await this.checkClaim(claim);
      const parent = claim ?? this.owner;
      if (parent === undefined) throw errChildLayer('this middleware is not a child layer yet: the parent claims it (sets its owner) before handing rows down');
      if (caller !== parent) throw this.otherParent(caller, parent);
      const sorted = [...rows].sort((a, b) => a.modRevision - b.modRevision || a.sub - b.sub);
      const first = sorted[0]?.modRevision;
      if (first !== undefined && first <= this.o.seq.lastAllocated) {
        throw errChildLayer(
          `revision ${first} handed down by the parent is not above this child's newest revision ${this.o.seq.lastAllocated}: a revision is never reused (was this child's storage replaced, or does another writer use it?)`,
        );
      }
      if (claim !== undefined && claim !== this.owner) {
        await ctx.tx.setMeta(META.parent, Buffer.from(claim));
        ctx.afterCommit.push(() => {
          this.owner = claim;
          this.o.log.info('claimed as a child layer', { parent: claim });
        });
      }
      await ctx.insertHandedDown(sorted);
      // a restart starts above these even if compaction or a revert removes their rows
      const last = sorted[sorted.length - 1]?.modRevision;
      if (last !== undefined) await ctx.tx.setMeta(META.revisionHighWater, Buffer.from(String(last)));
      // read in this transaction, after its rows: answered only once it committed
      const ahead: (KeyRow | null)[] = [];
      for (const key of readAhead) ahead.push((await ctx.tx.latest(key)) ?? null);
      return ahead;
    });
  }

  /** A claim by `claimant`: refused when another parent owns this child, or it holds its own data. */
  private async checkClaim(claimant: string): Promise<void> {
    if (this.owner !== undefined) {
      if (this.owner !== claimant) throw this.otherParent(claimant, this.owner);
      return;
    }
    if (claimant === this.o.clusterId()) throw errChildLayer('a middleware cannot be its own child: the topology routes to this middleware\'s own address');
    const max = await this.o.backend.maxRevision();
    if (max > 0) {
      const hint = (await this.enveloped())
        ? ' It holds data an older HariKube parent wrote through the etcd API (harikube/v1 envelopes): start the child on empty databases and copy the keys through the new parent.'
        : ' Start the child on empty databases.';
      throw errChildLayer(`this middleware cannot become a child layer of HariKube cluster ${claimant}: it already holds its own data (up to revision ${max} of its own revision space).${hint}`);
    }
  }

  private otherParent(caller: string, parent: string) {
    return errChildLayer(
      `this middleware is a child layer of HariKube cluster ${parent} (it belongs to another HariKube cluster than ${caller || 'a caller that named none'}): a child serves one parent; give this parent a child of its own`,
    );
  }

  /** Only the parent changes the child: `caller` must be it. */
  private check(caller: string): void {
    if (this.owner === undefined) throw errChildLayer('this middleware is not a child layer: a parent claims it first');
    if (caller !== this.owner) throw this.otherParent(caller, this.owner);
  }

  compact(caller: string, revision: number, batchSize: number, deadline: number): Promise<CompactResult> {
    this.check(caller);
    return this.o.compaction.handedDown(revision, batchSize, deadline);
  }

  /**
   * Runs a step of the parent's online migration (copying rows in at their old revisions, dropping moved
   * rows), serialised with the parent's writes. It goes around the write queue's batches on purpose: a copy
   * is not a change, so no watcher of this child sees an event for it, and neither the sequencer nor the
   * revision high-water mark moves (the rows carry revisions the parent handed out long ago).
   */
  async moveStep<T>(caller: string, step: () => Promise<T>): Promise<T> {
    this.check(caller);
    return this.o.queue.submit(true, async () => undefined as T, () => this.withoutEvents(step));
  }

  async revert(caller: string, from: number, to: number): Promise<void> {
    this.check(caller);
    await this.o.queue.submit(true, async () => undefined, () => this.withoutEvents(() => this.o.backend.revert(from, to)));
  }

  async recover(caller: string): Promise<void> {
    this.check(caller);
    await this.o.queue.submit(true, async () => undefined, () => this.withoutEvents(() => this.o.backend.recover()));
  }

  /** Runs `step`, then tells the store that rows changed without events (whether or not it failed midway). */
  private async withoutEvents<T>(step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } finally {
      this.o.changedWithoutEvents();
    }
  }
}

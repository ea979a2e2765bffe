/**
 * Writes across several databases through the store over real SQLite files, with faults injected at the
 * seam (a database whose begin, commit or revert fails): a Txn spanning databases is never half-applied,
 * also across a crash between the commits, and a failing database fails only the requests that touch it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { BackendUnavailableError, type Backend, type WriteTxn } from '../../middleware/src/backends/backend.js';
import { openBackend } from '../../middleware/src/backends/index.js';
import { META } from '../../middleware/src/backends/meta.js';
import { Mover } from '../../middleware/src/migration/mover.js';
import { Store } from '../../middleware/src/mvcc/store.js';
import { topologyMetrics } from '../../middleware/src/router/metrics.js';
import { RoutedBackend } from '../../middleware/src/router/routed-backend.js';
import { TopologyApplier } from '../../middleware/src/server/topology-applier.js';
import type { BackendRule } from '../../middleware/src/topology/schema.js';
import { b } from '../support/bytes.js';
import { keysIn } from '../support/routed.js';
import { waitUntil } from '../support/wait.js';

/** Switchable faults of one backend. */
interface Faults {
  begin?: boolean;
  commit?: boolean;
  revert?: boolean;
}

/** A backend whose begin, commit or revert fails while its fault is on (the database "is down"). */
function faulty(inner: Backend, faults: Faults): Backend {
  const down = (what: string) => new BackendUnavailableError(`${inner.description}: ${what}: connection refused (injected)`);
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'begin') {
        return async (): Promise<WriteTxn> => {
          if (faults.begin) throw down('begin');
          const tx = await target.begin();
          return new Proxy(tx, {
            get(t, p) {
              if (p === 'commit')
                return async () => {
                  if (faults.commit) {
                    await t.rollback();
                    throw down('commit');
                  }
                  return t.commit();
                };
              const v = Reflect.get(t, p) as unknown;
              return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
            },
          });
        };
      }
      if (prop === 'revert') {
        return async (from: number, to: number) => {
          if (faults.revert) throw down('revert');
          return target.revert(from, to);
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** `harikube_pending_reverts` of a rule, as /metrics reports it. */
async function pendingReverts(rule: string): Promise<number | undefined> {
  return (await topologyMetrics.pendingReverts.get()).values.find((v) => v.labels.rule === rule)?.value;
}

class Fixture {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'hk-routed-txn-'));
  readonly faults: Record<string, Faults> = { a: {}, b: {}, n: {} };
  store!: Store;
  routed!: RoutedBackend;
  applier!: TopologyApplier;
  mover!: Mover;

  file(name: string): string {
    return path.join(this.dir, `${name}.db`);
  }

  async open(): Promise<void> {
    const factory = (rule: BackendRule) => faulty(openBackend(rule.endpoint), this.faults[rule.name]!);
    const routed = new RoutedBackend(openBackend(`sqlite://${this.file('default')}`), factory);
    this.routed = routed;
    this.store = await Store.open({ backend: routed });
    this.mover = new Mover({ host: routed, keysPerSecond: 0, backoffMs: 50 });
    this.applier = new TopologyApplier({ store: this.store, routed, defaultEndpoint: `sqlite://${this.file('default')}`, factory, onMigration: () => this.mover.kick() });
    await this.applier.apply({ backends: this.rules() }, 'test');
  }

  /** Rules a and b (prefixes a/ and b/), `extra` first; rule a's database is `aFile`. */
  rules(extra: BackendRule[] = [], aFile = 'a'): BackendRule[] {
    return [
      ...extra,
      { name: 'a', endpoint: `sqlite://${this.file(aFile)}`, prefix: { prefix: 'a/' } },
      { name: 'b', endpoint: `sqlite://${this.file('b')}`, prefix: { prefix: 'b/' } },
    ];
  }

  /** Writes /registry/a/two in a, and leaves it there with its revert pending: b's commit and a's revert fail. */
  async halfAppliedInA(): Promise<void> {
    this.faults.b.commit = true;
    this.faults.a.revert = true;
    await assert.rejects(this.txnAll('two'), /rolled back/);
    this.faults.b.commit = false;
    assert.ok(keysIn(this.file('a')).includes('/registry/a/two'), 'the write is half there');
  }

  migrationDone(): Promise<true> {
    return waitUntil('the migration to finish', () => (this.routed.table.migrating ? undefined : true), { timeoutMs: 30_000 });
  }

  async close(): Promise<void> {
    await this.mover?.stop();
    await this.store?.close();
    this.cleanup();
  }

  /** A Txn writing one key in each database (default, a, b). */
  txnAll(tag: string) {
    const put = (key: string) => ({ request_put: { key: b(key), value: b(tag) } });
    return this.store.txn({ compare: [], success: [put(`/registry/c/${tag}`), put(`/registry/a/${tag}`), put(`/registry/b/${tag}`)], failure: [] });
  }

  async value(key: string): Promise<string | undefined> {
    return (await this.store.range({ key: b(key) })).kvs[0]?.value.toString();
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

describe('writes across databases', () => {
  it('a Txn whose commit fails in one database is rolled back in all of them and its revision is not reused', async () => {
    const f = new Fixture();
    try {
      await f.open();
      const ok = await f.txnAll('one');
      const rev1 = Number(ok.header.revision);
      f.faults.b.commit = true;
      await assert.rejects(f.txnAll('two'), (err: Error) => /Unavailable|rolled back/i.test(`${(err as { code?: number }).code} ${err.message}`) && /rolled back/.test(err.message));
      for (const k of ['/registry/c/two', '/registry/a/two', '/registry/b/two']) assert.equal(await f.value(k), undefined, `${k} half-applied`);
      assert.deepEqual(keysIn(f.file('a')), ['/registry/a/one']);
      f.faults.b.commit = false;
      const three = await f.txnAll('three');
      assert.ok(Number(three.header.revision) > rev1 + 1, 'the revision of the rolled-back write was reused');
      for (const k of ['/registry/c/three', '/registry/a/three', '/registry/b/three']) assert.equal(await f.value(k), 'three');
      assert.equal((await f.store.range({ key: b('/registry/a/one') })).kvs[0]?.value.toString(), 'one');
    } finally {
      await f.store?.close();
      f.cleanup();
    }
  });

  it('a crash between the commits is reverted on the next start: no database keeps a part of the write', async () => {
    const f = new Fixture();
    try {
      await f.open();
      const one = Number((await f.txnAll('one')).header.revision);
      // b cannot commit and cannot be reverted either: the process "dies" with the intent recorded
      f.faults.b.commit = true;
      f.faults.a.revert = true;
      await assert.rejects(f.txnAll('two'), /rolled back; databases that cannot be reached are reverted before their next use/);
      // until a is reverted, only requests touching it fail
      await assert.rejects(f.store.range({ key: b('/registry/a/one') }), /revert: connection refused/);
      assert.equal(await f.value('/registry/b/one'), 'one');
      const before = await f.store.range({ key: b('/registry/c/one') });
      await f.store.close();
      // a committed and could not be reverted: on disk the write is half there, with its intent recorded
      assert.ok(keysIn(f.file('a')).includes('/registry/a/two'));
      const meta = openBackend(`sqlite://${f.file('default')}`);
      await meta.open();
      const intent = (JSON.parse((await meta.getMeta(META.writeIntent))!.toString()) as { backends: string[] }[])[0]!;
      await meta.close();
      assert.deepEqual([...intent.backends].sort(), ['', 'a', 'b']);
      f.faults.b.commit = false;
      f.faults.a.revert = false;
      await f.open();
      assert.deepEqual(keysIn(f.file('default')), ['/registry/c/one'], 'reverted in the default backend');
      assert.deepEqual(keysIn(f.file('a')), ['/registry/a/one'], 'reverted in a');
      assert.deepEqual(keysIn(f.file('b')), ['/registry/b/one']);
      assert.equal((await f.store.backend.getMeta(META.writeIntent))?.length ?? 0, 0, 'intent cleared');
      const next = await f.store.put({ key: b('/registry/a/after'), value: b('x') });
      assert.ok(Number(before.header.revision) >= one + 1);
      assert.ok(Number(next.header.revision) > one + 1, 'a reverted revision was reused');
    } finally {
      await f.store?.close();
      f.cleanup();
    }
  });

  it('a database that fails fails only the requests that touch it, also inside one group commit', async () => {
    const f = new Fixture();
    try {
      await f.open();
      f.faults.b.begin = true;
      const puts = ['/registry/a/x', '/registry/b/x', '/registry/c/x', '/registry/a/y', '/registry/b/y'].map((k) =>
        f.store.put({ key: b(k), value: b('v') }).then(
          () => 'ok',
          (err: Error) => (err.message.includes('injected') ? 'unavailable' : err.message),
        ),
      );
      assert.deepEqual(await Promise.all(puts), ['ok', 'unavailable', 'ok', 'ok', 'unavailable']);
      f.faults.b.begin = false;
      await f.store.put({ key: b('/registry/b/z'), value: b('v') });
      assert.deepEqual(keysIn(f.file('b')), ['/registry/b/z']);
    } finally {
      await f.store?.close();
      f.cleanup();
    }
  });

  it('a topology change that points a rule elsewhere first does the revert pending there; until it can, the change is refused', async () => {
    const f = new Fixture();
    try {
      await f.open();
      await f.txnAll('one');
      await f.halfAppliedInA();
      assert.equal(await pendingReverts('a'), 1, 'the metric shows the revert pending in a');
      // a moves to n.db: its rows are copied there, so the half-applied write must be gone from a first
      await assert.rejects(f.applier.apply({ backends: f.rules([], 'n') }, 'test'), (err: Error) => {
        assert.match(err.message, /refused: a write that did not commit everywhere is still to be reverted in rule "a" \(.*a\.db.*\).*the topology in effect stays/);
        return true;
      });
      assert.match(f.routed.table.backends.get('a')!.description, /a\.db/, 'the old routing stays');
      f.faults.a.revert = false;
      await f.applier.apply({ backends: f.rules([], 'n') }, 'test');
      assert.equal(await pendingReverts('a'), 0, 'the metric shows the revert done');
      await f.migrationDone();
      assert.deepEqual(keysIn(f.file('n')), ['/registry/a/one']);
      assert.equal(await f.value('/registry/a/two'), undefined, 'the write that failed came back through the migration');
      assert.equal(await f.value('/registry/a/one'), 'one');
    } finally {
      await f.close();
    }
  });

  it('the migration mover copies no row whose revert is pending in its source: it waits until the revert is done', async () => {
    const f = new Fixture();
    try {
      await f.open();
      await f.txnAll('one');
      await f.store.put({ key: b('/registry/a/ten'), value: b('10') });
      await f.halfAppliedInA();
      // rule n takes a/t... from a, which stays where it is (no revert needed to apply this)
      await f.applier.apply({ backends: f.rules([{ name: 'n', endpoint: `sqlite://${f.file('n')}`, prefix: { prefix: 'a/t' } }]) }, 'test');
      assert.ok(f.routed.table.migrating);
      const failedOnRevert = () => f.mover.status().sources.some((s) => s.errors >= 2 && /revert/.test(s.lastError ?? ''));
      await waitUntil('the mover to retry on the pending revert (or to finish, wrongly)', () => (failedOnRevert() || !f.routed.table.migrating ? true : undefined), { timeoutMs: 10_000 });
      assert.deepEqual(keysIn(f.file('n')), [], 'nothing may move before the revert');
      f.faults.a.revert = false;
      await f.migrationDone();
      assert.deepEqual(keysIn(f.file('n')), ['/registry/a/ten']);
      assert.deepEqual(keysIn(f.file('a')), ['/registry/a/one']);
      assert.equal(await f.value('/registry/a/two'), undefined, 'the write that failed came back through the migration');
      assert.equal(await f.value('/registry/a/ten'), '10');
    } finally {
      await f.close();
    }
  });
});

/**
 * file:// topology source: initial read, in-place edits, editors' atomic replacement, Kubernetes volume
 * symlink swaps, invalid edits, unchanged touches, a file that appears later, and reload after a refusal.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { TopologyValidationError } from '../../middleware/src/topology/validate.js';
import {
  createTopologySource,
  TopologySourceError,
  type SourceDeps,
  type TopologySource,
  type TopologyUpdate,
} from '../../middleware/src/topology/source/index.js';
import { waitUntil } from '../support/wait.js';
import { doc, names, rule } from './source-fixtures.js';
import { captureLogger, type LogRecord } from '../support/capture-logger.js';



/** A temp dir, a source on `file` in it, recorded handler calls; everything is stopped and removed after the test. */
async function setup(t: TestContext, file = 'topology.yaml', deps: SourceDeps = {}) {
  const dir = await mkdtemp(path.join(tmpdir(), 'hk-file-source-'));
  const logs: LogRecord[] = [];
  // the re-stat fallback is slowed down so these tests see fs.watch at work (one test covers the fallback)
  const source = createTopologySource(path.join(dir, file), { logger: captureLogger(logs), fileStatIntervalMs: 60_000, ...deps });
  const updates: TopologyUpdate[] = [];
  const errors: Error[] = [];
  let refuse: ((u: TopologyUpdate) => Error | undefined) | undefined;
  t.after(async () => {
    await source.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const start = (s: TopologySource = source) =>
    s.start({
      onUpdate: async (u) => {
        updates.push(u);
        const refusal = refuse?.(u);
        if (refusal) throw refusal;
      },
      onError: (e) => errors.push(e),
    });
  return {
    dir,
    file: path.join(dir, file),
    source,
    updates,
    errors,
    logs,
    start,
    refuseWith: (f: (u: TopologyUpdate) => Error | undefined) => (refuse = f),
    unchangedCount: () => logs.filter((r) => r.msg === 'topology unchanged; not delivered').length,
  };
}

test('reads the file at start and picks up an in-place edit', async (t) => {
  const s = await setup(t);
  await writeFile(s.file, doc('pods'));
  await s.start();
  assert.equal(s.updates.length, 1, 'the first document is delivered before start() resolves');
  assert.deepEqual(names(s.updates[0]!), ['pods']);
  assert.equal(s.updates[0]!.origin, `file://${s.file}`);
  assert.equal(s.source.description, `file://${s.file}`);
  assert.match(s.updates[0]!.hash, /^[0-9a-f]{64}$/);

  await writeFile(s.file, doc('pods', 'leases'));
  await waitUntil('the edit to be delivered', () => (s.updates.length === 2 ? true : undefined));
  assert.deepEqual(names(s.updates[1]!), ['pods', 'leases']);
  assert.deepEqual(s.errors, []);
});

test('sees an editor-style replacement (write a temp file, rename it over)', async (t) => {
  const s = await setup(t);
  await writeFile(s.file, doc('pods'));
  await s.start();
  const tmp = path.join(s.dir, '.topology.yaml.swp');
  await writeFile(tmp, doc('configmaps'));
  await rename(tmp, s.file);
  await waitUntil('the replaced file to be delivered', () => (s.updates.length === 2 ? true : undefined));
  assert.deepEqual(names(s.updates[1]!), ['configmaps']);
  // the watch must still work on the new inode
  await writeFile(s.file, doc('secrets'));
  await waitUntil('a later edit to be delivered', () => (s.updates.length === 3 ? true : undefined));
  assert.deepEqual(names(s.updates[2]!), ['secrets']);
});

test('sees a Kubernetes volume update (the ..data symlink swapped to a new directory)', async (t) => {
  const s = await setup(t);
  // the layout kubelet's atomic writer creates: topology.yaml -> ..data/topology.yaml, ..data -> ..<timestamp>
  await mkdir(path.join(s.dir, '..2025_01_01_00_00_00.1'));
  await writeFile(path.join(s.dir, '..2025_01_01_00_00_00.1', 'topology.yaml'), doc('pods'));
  await symlink('..2025_01_01_00_00_00.1', path.join(s.dir, '..data'));
  await symlink('..data/topology.yaml', s.file);
  await s.start();
  assert.deepEqual(names(s.updates[0]!), ['pods']);

  await mkdir(path.join(s.dir, '..2025_01_01_00_01_00.2'));
  await writeFile(path.join(s.dir, '..2025_01_01_00_01_00.2', 'topology.yaml'), doc('pods', 'events'));
  await symlink('..2025_01_01_00_01_00.2', path.join(s.dir, '..data_tmp'));
  await rename(path.join(s.dir, '..data_tmp'), path.join(s.dir, '..data'));
  await rm(path.join(s.dir, '..2025_01_01_00_00_00.1'), { recursive: true });
  await waitUntil('the swapped volume to be delivered', () => (s.updates.length === 2 ? true : undefined));
  assert.deepEqual(names(s.updates[1]!), ['pods', 'events']);
  assert.deepEqual(s.errors, []);
});

test('an invalid edit is reported (source, rule, field) and a later valid edit is delivered', async (t) => {
  const s = await setup(t);
  await writeFile(s.file, doc('pods'));
  await s.start();
  await writeFile(s.file, stringify({ backends: [rule('pods'), { ...rule('bad'), endpoint: 'redis://cache:6379' }] }));
  await waitUntil('the invalid edit to be reported', () => (s.errors.length === 1 ? true : undefined));
  const err = s.errors[0]!;
  assert.ok(err instanceof TopologyValidationError);
  assert.match(err.message, new RegExp(`file://${s.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  assert.match(err.message, /backends\[1\] \(name "bad"\): field "endpoint"/);
  assert.equal(s.updates.length, 1, 'nothing is delivered for an invalid document');

  await writeFile(s.file, doc('pods', 'good'));
  await waitUntil('the fixed document to be delivered', () => (s.updates.length === 2 ? true : undefined));
  assert.deepEqual(names(s.updates[1]!), ['pods', 'good']);
  assert.equal(s.errors.length, 1);
});

test('touching the file or rewriting the same content delivers nothing; key order does not matter', async (t) => {
  const s = await setup(t);
  await writeFile(s.file, doc('pods'));
  await s.start();
  const later = new Date(Date.now() + 5_000);
  await utimes(s.file, later, later);
  await waitUntil('the touched file to be read', () => (s.unchangedCount() >= 1 ? true : undefined));
  // same rule, fields in another order and as JSON: the same content
  await writeFile(s.file, JSON.stringify({ backends: [{ prefix: { prefix: 'pods' }, endpoint: 'sqlite://./db/pods.db', name: 'pods' }] }));
  await waitUntil('the rewritten file to be read', () => (s.unchangedCount() >= 2 ? true : undefined));
  assert.equal(s.updates.length, 1);
  assert.deepEqual(s.errors, []);
});

test('a missing file is an error at start, and the file is picked up once it is created', async (t) => {
  const s = await setup(t);
  await s.start();
  assert.equal(s.updates.length, 0);
  assert.equal(s.errors.length, 1, 'the error is reported before start() resolves');
  assert.ok(s.errors[0] instanceof TopologySourceError);
  assert.match(s.errors[0]!.message, /file:\/\/.*topology\.yaml: the file does not exist/);

  await writeFile(s.file, doc('pods'));
  await waitUntil('the created file to be delivered', () => (s.updates.length === 1 ? true : undefined));
  assert.deepEqual(names(s.updates[0]!), ['pods']);
  assert.equal(s.errors.length, 1);
});

test('an empty backends list (or an empty file) is a valid topology', async (t) => {
  const s = await setup(t, 'topology.json');
  await writeFile(s.file, '{"backends": []}');
  await s.start();
  assert.deepEqual(s.updates[0]!.document, { backends: [] });
  await writeFile(s.file, '');
  await waitUntil('the emptied file to be read', () => (s.unchangedCount() >= 1 ? true : undefined));
  assert.equal(s.updates.length, 1, 'an empty file is the same (empty) topology');
  assert.deepEqual(s.errors, []);
});

test('without fs.watch, the periodic re-stat still finds changes', async (t) => {
  const s = await setup(t, 'topology.yaml', { fileWatch: false, fileStatIntervalMs: 50 });
  await writeFile(s.file, doc('pods'));
  await s.start();
  await writeFile(s.file, doc('nodes'));
  await waitUntil('the re-stat to find the edit', () => (s.updates.length === 2 ? true : undefined));
  assert.deepEqual(names(s.updates[1]!), ['nodes']);
});

test('a refused document is reported, not redelivered while unchanged, and delivered again by reload()', async (t) => {
  const s = await setup(t);
  await writeFile(s.file, doc('pods'));
  await s.start();
  const refusal = new Error('would move existing keys of /registry/leases/');
  s.refuseWith((u) => (names(u).includes('leases') ? refusal : undefined));

  await writeFile(s.file, doc('pods', 'leases'));
  await waitUntil('the refusal to be reported', () => (s.errors.length === 1 ? true : undefined));
  assert.equal(s.errors[0], refusal, 'onError gets the error onUpdate threw');
  assert.equal(s.updates.length, 2);

  const later = new Date(Date.now() + 5_000);
  await utimes(s.file, later, later);
  await waitUntil('the touched file to be read', () => (s.unchangedCount() >= 1 ? true : undefined));
  assert.equal(s.updates.length, 2, 'the refused content is not offered again on its own');

  s.refuseWith(() => undefined);
  await s.source.reload();
  assert.equal(s.updates.length, 3, 'reload() resolves after the delivery');
  assert.deepEqual(names(s.updates[2]!), ['pods', 'leases']);
  assert.equal(s.updates[2]!.hash, s.updates[1]!.hash);

  await s.source.reload();
  assert.equal(s.updates.length, 4, 'reload() delivers even when nothing changed');
  assert.equal(s.errors.length, 1);
});

test('stop() ends watching: later edits are not delivered', async (t) => {
  const s = await setup(t);
  await writeFile(s.file, doc('pods'));
  await s.start();
  await s.source.stop();
  await writeFile(s.file, doc('nodes'));
  await new Promise((r) => setTimeout(r, 300)); // longer than the debounce: an event would have been handled
  assert.equal(s.updates.length, 1);
  await assert.rejects(s.source.reload(), /needs a started source/);
});

test('async hooks are on only while onUpdate runs (every promise of the process pays for them)', async (t) => {
  // node:test itself turns async hooks on, so the check runs in a process of its own
  const dir = await mkdtemp(path.join(tmpdir(), 'hk-file-source-hooks-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'topology.yaml');
  await writeFile(file, doc('a'));
  const script = `
    import { executionAsyncId } from 'node:async_hooks';
    const { createTopologySource } = await import(${JSON.stringify(new URL('../../middleware/src/topology/source/index.ts', import.meta.url).href)});
    // with async hooks on, each promise continuation runs under an async ID of its own
    const hooksOn = async () => { await null; const a = executionAsyncId(); await null; return a !== executionAsyncId(); };
    const before = await hooksOn();
    const source = createTopologySource(${JSON.stringify(file)}, { fileStatIntervalMs: 60_000 });
    let inside;
    let reloaded = 0;
    await source.start({
      onUpdate: async () => {
        inside = await hooksOn();
        // from inside the handler: must not wait for itself
        if (reloaded++ === 0) await source.reload();
      },
      onError: (e) => { throw e; },
    });
    // the reload queued from inside runs after start() resolved: wait for it
    while (reloaded < 2) await new Promise((r) => setTimeout(r, 10));
    await source.reload();
    const after = await hooksOn();
    await source.stop();
    console.log(JSON.stringify({ before, inside, after, reloaded }));
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { timeout: 30_000 });
  assert.deepEqual(JSON.parse(stdout.trim().split('\n').pop()!), { before: false, inside: true, after: false, reloaded: 3 });
});

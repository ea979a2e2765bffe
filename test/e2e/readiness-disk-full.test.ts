/**
 * Readiness follows writability: with the SQLite disk full every write fails with Unavailable and /readyz
 * (and gRPC health) answers 503 / NOT_SERVING; once space returns, readiness recovers by itself and writes
 * succeed again. The disk is a 6 MiB tmpfs, which needs root (skipped otherwise, with the reason).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, unlinkSync, writeSync, openSync, closeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status as Status } from '@grpc/grpc-js';
import { EtcdClient } from '../support/grpc.js';
import { Middleware } from '../support/middleware.js';
import { waitUntil } from '../support/wait.js';

const b = (s: string) => Buffer.from(s);

/** A small tmpfs, or why there cannot be one here. */
function mountTmpfs(): { dir: string; skip: false } | { skip: string } {
  if (process.getuid?.() !== 0) return { skip: 'needs root to mount a small tmpfs (run the tests as root to include this one)' };
  const dir = mkdtempSync(path.join(os.tmpdir(), 'hk-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', dir], { stdio: 'pipe' });
    return { dir, skip: false };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    return { skip: `cannot mount a tmpfs here (${(err as Error).message.split('\n')[0]})` };
  }
}

/** Fills the file system of `dir` with one file; returns its path. */
function fill(dir: string): string {
  const file = path.join(dir, 'filler');
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  }
  // the last bytes of a partly written chunk
  try {
    for (;;) writeSync(fd, chunk.subarray(0, 512));
  } catch {
    // full
  }
  closeSync(fd);
  return file;
}

async function readyz(mw: Middleware): Promise<number> {
  const res = await fetch(`http://${mw.metricsAddress}/readyz`, { signal: AbortSignal.timeout(5_000) });
  await res.arrayBuffer();
  return res.status;
}

const mounted = mountTmpfs();

describe('readiness on a full disk', { skip: mounted.skip }, () => {
  const dir = mounted.skip === false ? mounted.dir : '';
  let mw: Middleware;
  let client: EtcdClient;

  before(async () => {
    mw = await Middleware.start({ endpoint: `sqlite://${dir}/state.db`, compactInterval: '0' });
    client = new EtcdClient(mw.address);
  });

  after(async () => {
    client?.close();
    await mw?.stop();
    execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('/readyz is 503 while writes fail for lack of space and 200 again once space returns', async () => {
    const value = Buffer.alloc(8 * 1024, 'v');
    let lastRevision = 0n;
    for (let i = 0; i < 20; i++) lastRevision = BigInt((await client.put({ key: b(`/full/before/${i}`), value })).header.revision);
    assert.equal(await readyz(mw), 200);

    const filler = fill(dir);
    // writes now fail (SQLite may absorb a few in space it already holds)
    let failed: { code?: number; details?: string } | undefined;
    for (let i = 0; i < 200 && !failed; i++) {
      await client.put({ key: b(`/full/during/${i}`), value }).then(
        (res) => (lastRevision = BigInt(res.header.revision)),
        (err: { code?: number; details?: string }) => (failed = err),
      );
    }
    assert.ok(failed, 'a write fails once the disk is full');
    assert.equal(failed.code, Status.UNAVAILABLE, `a write on a full disk is Unavailable (got ${failed.details})`);

    await waitUntil('/readyz to answer 503 while the disk is full', async () => ((await readyz(mw)) === 503 ? true : undefined), { timeoutMs: 10_000 });
    assert.equal((await client.healthCheck()).status, 'NOT_SERVING');
    // still not ready a while later (the readiness write probe fails too)
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(await readyz(mw), 503);
    await assert.rejects(client.put({ key: b('/full/still'), value }), (err: { code?: number }) => err.code === Status.UNAVAILABLE);

    unlinkSync(filler);
    await waitUntil('/readyz to answer 200 once space returns', async () => ((await readyz(mw)) === 200 ? true : undefined), { timeoutMs: 15_000 });
    assert.equal((await client.healthCheck()).status, 'SERVING');
    const after = await client.put({ key: b('/full/after'), value });
    // the writes that failed consumed no revision (etcd's revisions move only on successful writes); the
    // readiness probe writes meta only, which has no revision
    assert.equal(BigInt(after.header.revision), lastRevision + 1n, 'no revision gap after the failed writes');
    assert.equal((await client.range({ key: b('/full/before/'), range_end: b('/full/before0'), count_only: true })).count, '20');
  });
});

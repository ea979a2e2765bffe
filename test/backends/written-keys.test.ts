/**
 * The keys a child middleware or etcd backend may hold rows of (backends/written-keys.ts): absent is
 * answered only for a key neither read by the scan nor written or copied in since.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KeyRow } from '../../middleware/src/backends/backend.js';
import { WrittenKeys } from '../../middleware/src/backends/written-keys.js';

const keyRow = (key: string): KeyRow => ({ key: Buffer.from(key), value: Buffer.alloc(0), modRevision: 1, sub: 0, createRevision: 1, prevRevision: 0, version: 1, lease: '0', deleted: false });
const id = (key: string) => Buffer.from(key).toString('latin1');

/** A database of `stored` keys scanned page by page from `start` on, as `rangeWithTombstones` answers. */
function scanOf(stored: string[], during?: (page: number) => void) {
  const sorted = [...stored].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  let page = 0;
  return async (start: Buffer, limit: number) => {
    during?.(page++);
    return sorted.filter((k) => Buffer.compare(Buffer.from(k), start) >= 0).slice(0, limit).map(keyRow);
  };
}

test('every key counts as present until the scan has read the whole database', async () => {
  const w = new WrittenKeys();
  assert.equal(w.mayHold(id('/never')), true);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const loading = w.load(async () => {
    await gate;
    return [];
  });
  assert.equal(w.mayHold(id('/never')), true, 'not while loading');
  release();
  assert.equal(await loading, true);
  assert.equal(w.mayHold(id('/never')), false);
});

test('keys scanned over several pages, written during the scan, and written after it count as present; others do not', async () => {
  const stored = Array.from({ length: 12_345 }, (_, i) => `/registry/pods/ns-${i % 7}/pod-${i}`);
  const w = new WrittenKeys();
  // a write while the scan is on its second page: the scan may have passed its key already
  assert.equal(await w.load(scanOf(stored, (page) => page === 1 && w.add(Buffer.from('/registry/aaa/written-during')))), true);
  w.add(Buffer.from('/registry/zzz/written-after'));
  for (const k of [...stored, '/registry/aaa/written-during', '/registry/zzz/written-after']) assert.equal(w.mayHold(id(k)), true, k);
  const never = Array.from({ length: 2000 }, (_, i) => `/registry/pods/ns-${i % 7}/never-${i}`);
  assert.deepEqual(never.filter((k) => w.mayHold(id(k))), [], 'keys never written are absent (fingerprints of these do not collide)');
  // the latin1 id of a key with bytes above 0x7f is the same fingerprint as its bytes
  const binary = Buffer.from([0x2f, 0xff, 0x80, 0x00, 0x41]);
  assert.equal(w.mayHold(binary.toString('latin1')), false);
  w.add(binary);
  assert.equal(w.mayHold(binary.toString('latin1')), true);
});

test('a scan that fails leaves every key present, and can be tried again', async () => {
  const w = new WrittenKeys();
  assert.equal(await w.load(async () => Promise.reject(new Error('connection refused'))), false);
  assert.equal(w.mayHold(id('/never')), true);
  assert.equal(await w.load(scanOf(['/a'])), true);
  assert.equal(w.mayHold(id('/a')), true);
  assert.equal(w.mayHold(id('/never')), false);
});

test('loadInBackground scans once however often it is asked, and not at all for a closed backend', async () => {
  const w = new WrittenKeys();
  let scans = 0;
  const scan = async () => (scans++, []);
  w.loadInBackground(scan, () => false, 'test');
  await new Promise((r) => setImmediate(r));
  assert.equal(scans, 0, 'closed: no scan');
  w.loadInBackground(scan, () => true, 'test');
  w.loadInBackground(scan, () => true, 'test');
  await new Promise((r) => setImmediate(r));
  assert.equal(scans, 1);
  assert.equal(w.loaded, true);
  w.loadInBackground(scan, () => true, 'test');
  await new Promise((r) => setImmediate(r));
  assert.equal(scans, 1, 'loaded: never again');
});

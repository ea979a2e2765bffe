/**
 * secret:// topology source over a fake in-memory StoredKeyReader: protobuf- and JSON-stored Secrets, data
 * key order, errors located by data key, TLS material, a missing or deleted Secret, a broken watch, and the
 * delivery rules every source shares (coalescing during a slow onUpdate, reload, refusals).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { encodeStoredSecret, encodeStoredSecretJson } from '../support/stored-secret.js';
import { TopologyValidationError } from '../../middleware/src/topology/validate.js';
import {
  createTopologySource,
  TopologySourceError,
  type SecretTopologyIssue,
  type SourceDeps,
  type StoredKeyReader,
  type TopologyUpdate,
} from '../../middleware/src/topology/source/index.js';
import { waitUntil } from '../support/wait.js';
import { doc, names, rule } from './source-fixtures.js';
import { captureLogger, type LogRecord } from '../support/capture-logger.js';

const KEY = '/registry/secrets/harikube/topology-config';
const flush = () => new Promise((resolve) => setImmediate(resolve));

type Data = Record<string, string | Buffer>;
const proto = (data: Data) => encodeStoredSecret({ name: 'topology-config', namespace: 'harikube', data });
const json = (data: Data) => encodeStoredSecretJson({ name: 'topology-config', namespace: 'harikube', data });

interface FakeWatch {
  key: string;
  after: number;
  onChange: (value: Buffer | undefined, revision: number) => void;
  onError: (err: Error) => void;
}

/** The store as the secret source sees it: one revision counter, values by key, synchronous watch callbacks. */
class FakeKeys implements StoredKeyReader {
  revision = 1;
  gets = 0;
  readonly values = new Map<string, Buffer>();
  readonly watches = new Set<FakeWatch>();

  /** While set, get() rejects with it (the store is unavailable). */
  failGet?: Error;

  async get(key: Buffer) {
    this.gets++;
    if (this.failGet) throw this.failGet;
    return { value: this.values.get(key.toString()), revision: this.revision };
  }

  watch(key: Buffer, afterRevision: number, onChange: FakeWatch['onChange'], onError: FakeWatch['onError']) {
    const w = { key: key.toString(), after: afterRevision, onChange, onError };
    this.watches.add(w);
    return () => void this.watches.delete(w);
  }

  /** Writes (or deletes, with undefined) at the next revision; `notify: false` is a change a broken watch missed. */
  put(value: Buffer | undefined, { notify = true, key = KEY } = {}): number {
    this.revision++;
    if (value) this.values.set(key, value);
    else this.values.delete(key);
    if (notify) for (const w of [...this.watches]) if (w.key === key && this.revision > w.after) w.onChange(value, this.revision);
    return this.revision;
  }

  breakWatches(err: Error): void {
    for (const w of [...this.watches]) {
      this.watches.delete(w);
      w.onError(err);
    }
  }
}


function setup(t: TestContext, deps: SourceDeps = {}) {
  const keys = new FakeKeys();
  const logs: LogRecord[] = [];
  const source = createTopologySource('secret://harikube/topology-config', { keys, logger: captureLogger(logs), ...deps });
  t.after(() => source.stop());
  const updates: TopologyUpdate[] = [];
  const errors: Error[] = [];
  let onUpdate: (u: TopologyUpdate) => Promise<void> = async () => {};
  const start = () =>
    source.start({
      onUpdate: async (u) => {
        updates.push(u);
        await onUpdate(u);
      },
      onError: (e) => errors.push(e),
    });
  return {
    keys,
    logs,
    source,
    updates,
    errors,
    start,
    setOnUpdate: (f: (u: TopologyUpdate) => Promise<void>) => (onUpdate = f),
    unchangedCount: () => logs.filter((r) => r.msg === 'topology unchanged; not delivered').length,
  };
}

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'hk-secret-source-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('a protobuf-stored Secret: data keys in byte order are the rule order; changes are watched', async (t) => {
  const s = setup(t);
  // byte order puts "Z..." before "a...", and the operator's zero-padded prefixes sort numerically
  s.keys.put(proto({ '0002-b.yaml': doc('b1', 'b2'), '0001-a.yaml': doc('a1'), 'Z-last.yml': doc('z'), '0010-c.json': JSON.stringify({ backends: [rule('c')] }) }));
  await s.start();
  assert.equal(s.updates.length, 1);
  assert.deepEqual(names(s.updates[0]!), ['a1', 'b1', 'b2', 'c', 'z']);
  assert.equal(s.updates[0]!.origin, 'secret://harikube/topology-config (revision 2)');
  assert.equal(s.source.description, 'secret://harikube/topology-config');

  const rev = s.keys.put(proto({ '0001-a.yaml': doc('a1'), '0002-b.yaml': doc('b2', 'b1') }));
  await waitUntil('the changed Secret to be delivered', () => (s.updates.length === 2 ? true : undefined));
  assert.deepEqual(names(s.updates[1]!), ['a1', 'b2', 'b1']);
  assert.equal(s.updates[1]!.origin, `secret://harikube/topology-config (revision ${rev})`);
  assert.deepEqual(s.errors, []);
});

test('a JSON-stored Secret decodes the same; the same content stored differently is no change', async (t) => {
  const s = setup(t);
  s.keys.put(json({ '0001-a.yaml': doc('a'), '0002-b.yaml': doc('b') }));
  await s.start();
  assert.deepEqual(names(s.updates[0]!), ['a', 'b']);
  s.keys.put(proto({ '0001-a.yaml': doc('a'), '0002-b.yaml': doc('b') }));
  await waitUntil('the re-stored Secret to be read', () => (s.unchangedCount() >= 1 ? true : undefined));
  assert.equal(s.updates.length, 1);
});

test('an invalid rule is reported by data key, rule (index and name) and field', async (t) => {
  const s = setup(t);
  s.keys.put(proto({ '0001-a.yaml': doc('a1', 'a2'), '0002-shop.rules.yaml': stringify({ backends: [rule('ok'), { ...rule('bad'), endpoint: 'redis://x' }] }) }));
  await s.start();
  assert.equal(s.updates.length, 0);
  const err = s.errors[0]!;
  assert.ok(err instanceof TopologyValidationError);
  assert.match(err.message, /^invalid topology from secret:\/\/harikube\/topology-config \(revision 2\):/);
  assert.match(err.message, /data key "0002-shop\.rules\.yaml" \(its backends\[1\]\): backends\[3\] \(name "bad"\): field "endpoint"/);
  const issue = err.issues[0] as SecretTopologyIssue;
  assert.equal(issue.dataKey, '0002-shop.rules.yaml');
  assert.equal(issue.indexInDataKey, 1);
  assert.equal(issue.index, 3);

  // a duplicate across two data keys, and a document that is not a topology, are located too
  s.keys.put(proto({ '0001-a.yaml': doc('a'), '0002-b.yaml': doc('a') }));
  await waitUntil('the duplicate to be reported', () => (s.errors.length === 2 ? true : undefined));
  assert.match(s.errors[1]!.message, /data key "0002-b\.yaml" \(its backends\[0\]\): backends\[1\] \(name "a"\): field "name": duplicates the name of backends\[0\]/);
  s.keys.put(proto({ '0001-a.yaml': 'rules: []\n', '0002-b.yaml': 'backends: {}\n', '0003-c.yaml': 'backends: [\n' }));
  await waitUntil('the malformed documents to be reported', () => (s.errors.length === 3 ? true : undefined));
  assert.match(s.errors[2]!.message, /data key "0001-a\.yaml": field "rules": unknown field/);
  assert.match(s.errors[2]!.message, /data key "0002-b\.yaml": field "backends": must be a list/);
  assert.match(s.errors[2]!.message, /data key "0003-c\.yaml": field "\(document\)": is not valid YAML/);

  s.keys.put(proto({ '0001-a.yaml': doc('a'), '0002-b.yaml': '' }));
  await waitUntil('the fixed Secret to be delivered', () => (s.updates.length === 1 ? true : undefined));
  assert.deepEqual(names(s.updates[0]!), ['a']);
});

test('a Secret with no documents is the empty topology', async (t) => {
  const s = setup(t);
  s.keys.put(proto({}));
  await s.start();
  assert.deepEqual(s.updates[0]!.document, { backends: [] });
});

test('TLS material is written atomically with mode 0600 before onUpdate; a rotated certificate is delivered', async (t) => {
  const dir = await tempDir(t);
  const tlsDir = path.join(dir, 'tls'); // created by the source
  const s = setup(t, { tlsDir });
  const withTls = (ca: string) =>
    proto({
      '0001-etcd.yaml': stringify({ backends: [{ ...rule('etcd'), endpoint: 'https://etcd:2379', backendTLS: { caFile: path.join(tlsDir, 'ca.crt'), keyFile: path.join(tlsDir, 'client.key') } }] }),
      'ca.crt': ca,
      'client.key': 'PRIVATE KEY',
    });
  const seenInUpdate: string[] = [];
  s.setOnUpdate(async () => void seenInUpdate.push(await readFile(path.join(tlsDir, 'ca.crt'), 'utf8')));
  s.keys.put(withTls('CA ONE'));
  await s.start();
  assert.equal(s.updates.length, 1);
  assert.deepEqual(seenInUpdate, ['CA ONE'], 'the files exist when onUpdate runs');
  assert.deepEqual(s.updates[0]!.tlsFilesChanged?.sort(), [path.join(tlsDir, 'ca.crt'), path.join(tlsDir, 'client.key')]);
  for (const f of ['ca.crt', 'client.key']) assert.equal((await stat(path.join(tlsDir, f))).mode & 0o777, 0o600, `${f} mode`);
  assert.equal(await readFile(path.join(tlsDir, 'client.key'), 'utf8'), 'PRIVATE KEY');
  assert.deepEqual((await readdir(tlsDir)).sort(), ['ca.crt', 'client.key'], 'no temp files left');

  // only the certificate changes: the document is the same, the content is not
  s.keys.put(withTls('CA TWO'));
  await waitUntil('the rotated certificate to be delivered', () => (s.updates.length === 2 ? true : undefined));
  assert.deepEqual(seenInUpdate, ['CA ONE', 'CA TWO']);
  assert.deepEqual(s.updates[1]!.tlsFilesChanged, [path.join(tlsDir, 'ca.crt')]);
  assert.deepEqual(s.updates[1]!.document, s.updates[0]!.document);
  assert.notEqual(s.updates[1]!.hash, s.updates[0]!.hash);
  assert.deepEqual(s.errors, []);
});

test('TLS material without TOPOLOGY_CONFIG_TLS_DIR is an error', async (t) => {
  const s = setup(t);
  s.keys.put(proto({ '0001-a.yaml': doc('a'), 'ca.crt': 'CA' }));
  await s.start();
  assert.equal(s.updates.length, 0);
  assert.ok(s.errors[0] instanceof TopologySourceError);
  assert.match(s.errors[0]!.message, /data keys "ca\.crt" are TLS material/);
  assert.match(s.errors[0]!.message, /TOPOLOGY_CONFIG_TLS_DIR/);
});

test('a missing Secret is "no topology yet" (no error); it is picked up when created', async (t) => {
  const s = setup(t);
  await s.start();
  assert.deepEqual(s.updates, []);
  assert.deepEqual(s.errors, []);
  assert.ok(s.logs.some((r) => r.level === 'info' && /does not exist yet/.test(r.msg)));
  s.keys.put(json({ '0001-a.yaml': doc('a') }));
  await waitUntil('the created Secret to be delivered', () => (s.updates.length === 1 ? true : undefined));
  assert.deepEqual(names(s.updates[0]!), ['a']);
});

test('deleting the Secret is an error, never an empty topology', async (t) => {
  const s = setup(t);
  s.keys.put(proto({ '0001-a.yaml': doc('a') }));
  await s.start();
  const rev = s.keys.put(undefined);
  await waitUntil('the deletion to be reported', () => (s.errors.length === 1 ? true : undefined));
  assert.ok(s.errors[0] instanceof TopologySourceError);
  assert.match(s.errors[0]!.message, new RegExp(`secret://harikube/topology-config \\(revision ${rev}\\): the Secret was deleted; the last good topology stays active`));
  assert.equal(s.updates.length, 1);
  await s.source.reload();
  assert.equal(s.updates.length, 1, 'a reload of a deleted Secret delivers nothing either');
  assert.equal(s.errors.length, 2);

  s.keys.put(proto({ '0001-a.yaml': doc('a', 'b') }));
  await waitUntil('the recreated Secret to be delivered', () => (s.updates.length === 2 ? true : undefined));
  assert.deepEqual(names(s.updates[1]!), ['a', 'b']);
});

test('a broken watch (e.g. compacted) is followed by a fresh get() and a new watch', async (t) => {
  const s = setup(t);
  s.keys.put(proto({ '0001-a.yaml': doc('a') }));
  await s.start();
  assert.equal(s.keys.gets, 1);
  s.keys.put(proto({ '0001-a.yaml': doc('a', 'missed') }), { notify: false });
  s.keys.breakWatches(new Error('the watch fell behind compaction (revision 3)'));
  await waitUntil('the re-read to deliver the missed change', () => (s.updates.length === 2 ? true : undefined));
  assert.deepEqual(names(s.updates[1]!), ['a', 'missed']);
  assert.equal(s.keys.gets, 2);
  assert.ok(s.logs.some((r) => r.level === 'warn' && /watch of the topology Secret broke/.test(r.msg)));
  await waitUntil('a new watch', () => (s.keys.watches.size === 1 ? true : undefined));
  s.keys.put(proto({ '0001-a.yaml': doc('after') }));
  await waitUntil('a change through the new watch', () => (s.updates.length === 3 ? true : undefined));
  assert.deepEqual(names(s.updates[2]!), ['after']);
  assert.deepEqual(s.errors, []);
});

test('a store that cannot be read is an error, and the read is retried', async (t) => {
  const s = setup(t);
  s.keys.put(proto({ '0001-a.yaml': doc('a') }));
  s.keys.failGet = new Error('backend unavailable');
  await s.start();
  assert.equal(s.updates.length, 0);
  assert.ok(s.errors[0] instanceof TopologySourceError);
  assert.match(s.errors[0]!.message, /cannot read key \/registry\/secrets\/harikube\/topology-config from the middleware's store: backend unavailable; retrying/);
  s.keys.failGet = undefined;
  await waitUntil('the retried read to deliver', () => (s.updates.length === 1 ? true : undefined));
  assert.deepEqual(names(s.updates[0]!), ['a']);
  assert.equal(s.errors.length, 1, 'repeated identical failures are reported once');
  await waitUntil('a watch', () => (s.keys.watches.size === 1 ? true : undefined));
});

test('changes during a slow onUpdate are coalesced: exactly the newest is delivered next', async (t) => {
  const s = setup(t);
  s.keys.put(proto({ '0001.yaml': doc('v1') }));
  await s.start();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let active = 0;
  let overlapped = false;
  s.setOnUpdate(async (u) => {
    if (++active > 1) overlapped = true;
    if (names(u)[0] === 'v2') await gate;
    active--;
  });
  s.keys.put(proto({ '0001.yaml': doc('v2') }));
  await waitUntil('v2 to be in onUpdate', () => (s.updates.length === 2 ? true : undefined));
  for (const v of ['v3', 'v4', 'v5']) s.keys.put(proto({ '0001.yaml': doc(v) }));
  await flush(); // no I/O in reading a Secret: one turn of the loop queues all three
  assert.equal(s.updates.length, 2, 'nothing is delivered while onUpdate runs');
  release();
  await waitUntil('the next delivery', () => (s.updates.length === 3 ? true : undefined));
  await s.source.reload(); // resolves after its own delivery, which is behind anything still queued
  assert.deepEqual(s.updates.map((u) => names(u)[0]), ['v1', 'v2', 'v5', 'v5']);
  assert.equal(overlapped, false, 'onUpdate never runs concurrently');
});

test('reload() delivers an unchanged Secret; a refused one only comes back by change or reload()', async (t) => {
  const s = setup(t);
  s.keys.put(proto({ '0001.yaml': doc('a') }));
  await s.start();
  await s.source.reload();
  assert.equal(s.updates.length, 2);
  assert.equal(s.updates[1]!.hash, s.updates[0]!.hash);

  const refusal = new Error('refused: moves /registry/b');
  s.setOnUpdate(async (u) => {
    if (names(u).includes('b')) throw refusal;
  });
  s.keys.put(proto({ '0001.yaml': doc('a', 'b') }));
  await waitUntil('the refusal', () => (s.errors.length === 1 ? true : undefined));
  assert.equal(s.errors[0], refusal);
  s.keys.put(proto({ '0001.yaml': doc('a', 'b') })); // written again, same content
  await waitUntil('the rewrite to be read', () => (s.unchangedCount() >= 1 ? true : undefined));
  assert.equal(s.updates.length, 3);

  s.setOnUpdate(async () => {});
  await s.source.reload();
  assert.equal(s.updates.length, 4);
  assert.deepEqual(names(s.updates[3]!), ['a', 'b']);

  // a further change after a refusal is delivered normally
  s.keys.put(proto({ '0001.yaml': doc('a', 'c') }));
  await waitUntil('the next change', () => (s.updates.length === 5 ? true : undefined));
});

test('reload() and stop() called from inside onUpdate do not deadlock', async (t) => {
  const s = setup(t);
  s.keys.put(proto({ '0001.yaml': doc('a') }));
  let reloaded = false;
  s.setOnUpdate(async () => {
    if (!reloaded) {
      reloaded = true;
      await s.source.reload();
    }
  });
  await s.start();
  await waitUntil('the reload queued from inside onUpdate', () => (s.updates.length === 2 ? true : undefined));

  const t2 = setup(t);
  t2.keys.put(proto({ '0001.yaml': doc('a') }));
  t2.setOnUpdate(async () => {
    await t2.source.stop();
  });
  await t2.start();
  t2.keys.put(proto({ '0001.yaml': doc('b') }));
  await flush();
  assert.equal(t2.updates.length, 1, 'nothing is delivered after stop()');
  assert.equal(t2.keys.watches.size, 0, 'stop() cancels the watch');
});

test('an undecodable value is an error naming the Secret', async (t) => {
  const s = setup(t);
  s.keys.put(Buffer.from('k8s:enc:aescbc:v1:key1:....'));
  await s.start();
  assert.ok(s.errors[0] instanceof TopologySourceError);
  assert.match(s.errors[0]!.message, /^topology source secret:\/\/harikube\/topology-config \(revision 2\): stored Secret cannot be decoded: it is encrypted at rest/);
});

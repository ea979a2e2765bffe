/** Sealed endpoints (AES-256-GCM, base64 of nonce || ciphertext || tag) and resolving a spec's rules. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import {
  DecryptError,
  keysFromSecretData,
  openEndpoint,
  parseAesKey,
  sealEndpoint,
  type NamedKey,
} from '../../middleware/src/operator/decrypt.js';
import { KeyLookupError, resolveRules } from '../../middleware/src/operator/resolve.js';

const oldKey: NamedKey = { name: 'key-2024', key: randomBytes(32) };
const newKey: NamedKey = { name: 'key-2025', key: randomBytes(32) };

test('a sealed endpoint opens with its key', () => {
  const sealed = sealEndpoint('postgres://u:p@db:5432/pods', newKey.key);
  assert.deepEqual(openEndpoint(sealed, [newKey]), { plaintext: 'postgres://u:p@db:5432/pods', keyName: 'key-2025' });
  assert.notEqual(sealEndpoint('same', newKey.key), sealEndpoint('same', newKey.key), 'every seal uses a fresh nonce');
});

test('the format is nonce(12) || ciphertext || tag(16), as Go gcm.Seal(nonce, nonce, plaintext, nil) writes it', () => {
  const nonce = Buffer.alloc(12, 7);
  const cipher = createCipheriv('aes-256-gcm', oldKey.key, nonce);
  const body = Buffer.concat([cipher.update('mysql://root:pw@tcp(db:3306)/app'), cipher.final()]);
  const sealed = Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64');
  assert.equal(openEndpoint(sealed, [oldKey]).plaintext, 'mysql://root:pw@tcp(db:3306)/app');
});

test('key rotation: a value sealed with an older key still opens when newer keys come first', () => {
  const sealedOld = sealEndpoint('sqlite://./old.db', oldKey.key);
  const sealedNew = sealEndpoint('sqlite://./new.db', newKey.key);
  assert.deepEqual(openEndpoint(sealedOld, [newKey, oldKey]), { plaintext: 'sqlite://./old.db', keyName: 'key-2024' });
  assert.equal(openEndpoint(sealedNew, [newKey, oldKey]).keyName, 'key-2025');
});

test('a wrong key, corrupt base64 and a too-short value fail with a reason that does not show the value', () => {
  const sealed = sealEndpoint('postgres://u:secret@db/pods', oldKey.key);
  assert.throws(() => openEndpoint(sealed, [newKey]), (e: Error) => {
    assert.ok(e instanceof DecryptError);
    assert.match(e.message, /cannot be decrypted with any of the 1 key\(s\) \(key-2025\)/);
    assert.ok(!e.message.includes(sealed) && !e.message.includes('secret'));
    return true;
  });
  assert.throws(() => openEndpoint('not base64 at all!', [oldKey]), /is not valid base64/);
  assert.throws(() => openEndpoint(Buffer.alloc(28).toString('base64'), [oldKey]), /is 28 bytes after base64 decoding; a sealed endpoint has at least 29/);
  const tampered = Buffer.from(sealed, 'base64');
  tampered[14]! ^= 1;
  assert.throws(() => openEndpoint(tampered.toString('base64'), [oldKey]), /cannot be decrypted/);
});

test('keys are 32 raw bytes or base64 of 32 bytes; other data entries are ignored; none usable is an error', () => {
  const raw = randomBytes(32);
  assert.deepEqual(parseAesKey(raw), raw);
  assert.deepEqual(parseAesKey(Buffer.from(raw.toString('base64') + '\n')), raw);
  assert.deepEqual(parseAesKey(Buffer.from(raw.toString('base64url'))), raw);
  assert.equal(parseAesKey(Buffer.from('too short')), undefined);
  assert.equal(parseAesKey(randomBytes(16)), undefined);

  const keys = keysFromSecretData({ b: Buffer.from(raw.toString('base64')), a: raw, readme: Buffer.from('not a key') }, 'ns/keys');
  assert.deepEqual(keys.map((k) => k.name), ['a', 'b']);
  assert.throws(() => keysFromSecretData({ readme: Buffer.from('x') }, 'ns/keys'), /Secret ns\/keys holds no AES-256 key/);
});

test('resolveRules decrypts endpoints and names the rule and field of what fails', async () => {
  const keys = async () => [newKey];
  const spec = (endpoints: string[]) => ({
    position: 1,
    endpointDecryptSecret: 'harikube/keys',
    backends: endpoints.map((endpoint, i) => ({ name: `r${i}`, endpoint, prefix: { prefix: `p${i}` } })),
  });
  const ok = await resolveRules(spec([sealEndpoint('sqlite://./a.db', newKey.key)]), keys);
  assert.deepEqual(ok, { ok: true, rules: [{ name: 'r0', endpoint: 'sqlite://./a.db', prefix: { prefix: 'p0' } }] });

  const wrong = await resolveRules(spec([sealEndpoint('sqlite://./a.db', newKey.key), sealEndpoint('sqlite://./b.db', oldKey.key)]), keys);
  assert.equal(wrong.ok, false);
  assert.match((wrong as { failure: string }).failure, /^backends\[1\] \(name "r1"\): field "endpoint": cannot be decrypted/);

  // A decrypted endpoint that does not parse is reported without any part of it.
  const bad = await resolveRules(spec([sealEndpoint('postgres://u:hunter2@secret-host:99999/db', newKey.key)]), keys);
  assert.equal(bad.ok, false);
  const failure = (bad as { failure: string }).failure;
  assert.match(failure, /backends\[0\] \(name "r0"\): field "endpoint": endpoint "<sealed endpoint>": port 99999 is out of range/);
  assert.ok(!failure.includes('secret-host') && !failure.includes('hunter2'));

  const plain = await resolveRules(spec(['postgres://u:p@db/pods']), keys);
  assert.match((plain as { failure: string }).failure, /field "endpoint": endpointDecryptSecret is set, so the endpoint must be base64/);
});

test('resolveRules reports a missing decrypt Secret as transient and bad keys as not', async () => {
  const sealed = sealEndpoint('sqlite://./a.db', newKey.key);
  const spec = { position: 1, endpointDecryptSecret: 'harikube/keys', backends: [{ name: 'a', endpoint: sealed, prefix: { prefix: 'a' } }] };
  const missing = await resolveRules(spec, async () => {
    throw new KeyLookupError('Secret not found (create it, or fix the reference)', true);
  });
  assert.deepEqual(missing, { ok: false, failure: 'endpointDecryptSecret harikube/keys: Secret not found (create it, or fix the reference)', transient: true });
  const noKeys = await resolveRules(spec, async () => keysFromSecretData({}, 'harikube/keys'));
  assert.equal(noKeys.ok, false);
  assert.equal((noKeys as { transient: boolean }).transient, false);
});

test('resolveRules names rule index, name and field of schema and rule errors', async () => {
  const failureOf = async (backends: unknown[]) => {
    const result = await resolveRules({ position: 1, backends }, async () => []);
    assert.equal(result.ok, false);
    return (result as { failure: string }).failure;
  };
  const fine = { name: 'fine', endpoint: 'sqlite://./a.db', prefix: { prefix: 'a' } };
  assert.match(
    await failureOf([fine, { name: 'typo', endpoint: 'sqlite://./b.db', prefx: { prefix: 'b' } }]),
    /^backends\[1\] \(name "typo"\): field "prefx": unknown field/,
  );
  assert.match(
    await failureOf([fine, { name: 'two', endpoint: 'sqlite://./c.db', prefix: { prefix: 'c' }, namespace: { namespace: 'x' } }]),
    /^backends\[1\] \(name "two"\): field "namespace,prefix": has 2 match blocks/,
  );
});

/** TLS options towards database servers, from backendTLS and the endpoint's own parameters. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { mysqlTls, postgresTls } from '../../middleware/src/backends/sql/tls.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'hk-tls-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const ca = path.join(dir, 'ca.crt');
writeFileSync(ca, 'CA PEM');
const D = 'postgres://u@h:5432/d';

test('no TLS unless asked for', () => {
  assert.equal(postgresTls(D, {}, undefined), undefined);
  assert.equal(postgresTls(D, { sslmode: 'prefer' }, undefined), undefined);
  assert.equal(postgresTls(D, { sslmode: 'disable' }, { caFile: ca }), undefined);
  assert.equal(mysqlTls(D, {}, undefined), undefined);
  assert.equal(mysqlTls(D, { tls: 'false' }, { caFile: ca }), undefined);
});

test('backendTLS alone means verified TLS with its files', () => {
  const opts = postgresTls(D, {}, { caFile: ca });
  assert.deepEqual(opts?.ca, Buffer.from('CA PEM'));
  assert.equal(opts?.rejectUnauthorized, true);
  assert.equal(opts?.checkServerIdentity, undefined, 'host name checked');
  assert.equal(postgresTls(D, {}, { caFile: ca, skipVerify: true })?.rejectUnauthorized, false);
});

test('sslmode follows libpq: require encrypts without verifying unless a CA is given; verify-ca skips the host name', () => {
  assert.equal(postgresTls(D, { sslmode: 'require' }, undefined)?.rejectUnauthorized, false);
  const requireWithCa = postgresTls(D, { sslmode: 'require', sslrootcert: ca }, undefined);
  assert.equal(requireWithCa?.rejectUnauthorized, true);
  const verifyCa = postgresTls(D, { sslmode: 'verify-ca', sslrootcert: ca }, undefined);
  assert.equal(verifyCa?.rejectUnauthorized, true);
  assert.equal(verifyCa?.checkServerIdentity?.('h', {} as never), undefined);
  const full = postgresTls(D, { sslmode: 'verify-full' }, { caFile: ca });
  assert.equal(full?.rejectUnauthorized, true);
  assert.equal(full?.checkServerIdentity, undefined);
});

test('the MySQL tls parameter: true verifies, skip-verify does not', () => {
  assert.equal(mysqlTls(D, { tls: 'true' }, undefined)?.rejectUnauthorized, true);
  assert.equal(mysqlTls(D, { tls: 'skip-verify' }, undefined)?.rejectUnauthorized, false);
  assert.equal(mysqlTls(D, { 'ssl-mode': 'REQUIRED' }, undefined)?.rejectUnauthorized, false);
  assert.throws(() => mysqlTls(D, { tls: 'maybe' }, undefined), /tls "maybe"/);
});

test('an unreadable certificate file is named in the error', () => {
  assert.throws(() => postgresTls(D, {}, { caFile: path.join(dir, 'missing.crt') }), /TLS CA file .*missing\.crt/);
});

/**
 * TLS towards PostgreSQL and MySQL servers, from a rule's `backendTLS` and the endpoint's own parameters
 * (libpq's `sslmode`/`sslrootcert`/`sslcert`/`sslkey`; the Go MySQL driver's `tls`). The result is the
 * `ssl` option both drivers take (Node TLS options), or undefined for a plain connection.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { BackendTLS } from '../../topology/schema.js';

/** How strictly the server certificate is checked. */
export type TlsMode = 'disable' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

function read(description: string, what: string, file: string | undefined): Buffer | undefined {
  if (!file) return undefined;
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`${description}: cannot read the TLS ${what} file ${file}: ${(err as Error).message}; fix backendTLS or the endpoint parameters`);
  }
}

/**
 * Builds the TLS options. `prefer` (the default when nothing is said) means TLS only if `backendTLS` is
 * given: neither driver can fall back to plain text after a failed TLS handshake.
 */
export function tlsOptions(description: string, mode: TlsMode | undefined, tls: BackendTLS | undefined): ConnectionOptions | undefined {
  const effective = mode ?? 'prefer';
  if (effective === 'disable') return undefined;
  if (effective === 'prefer' && !tls) return undefined;
  const ca = read(description, 'CA', tls?.caFile);
  const opts: ConnectionOptions = {
    ca,
    cert: read(description, 'certificate', tls?.certFile),
    key: read(description, 'key', tls?.keyFile),
  };
  // libpq: `require` verifies (like verify-ca) only when a CA is given; `verify-ca` skips the host name check.
  const verify = !tls?.skipVerify && (effective !== 'require' || ca !== undefined);
  opts.rejectUnauthorized = verify;
  if (verify && (effective === 'verify-ca' || effective === 'require')) opts.checkServerIdentity = () => undefined;
  return opts;
}

/** libpq `sslmode` (and the certificate file parameters, which override `backendTLS`). */
export function postgresTls(description: string, params: Record<string, string>, tls: BackendTLS | undefined): ConnectionOptions | undefined {
  const modes: Record<string, TlsMode> = {
    disable: 'disable',
    allow: 'prefer',
    prefer: 'prefer',
    require: 'require',
    'verify-ca': 'verify-ca',
    'verify-full': 'verify-full',
  };
  const given = params.sslmode;
  if (given !== undefined && !(given in modes)) {
    throw new Error(`${description}: sslmode "${given}" is not one of ${Object.keys(modes).join(', ')}`);
  }
  const merged: BackendTLS = { ...tls };
  if (params.sslrootcert) merged.caFile = params.sslrootcert;
  if (params.sslcert) merged.certFile = params.sslcert;
  if (params.sslkey) merged.keyFile = params.sslkey;
  const any = tls !== undefined || params.sslrootcert !== undefined || params.sslcert !== undefined;
  return tlsOptions(description, given === undefined ? undefined : modes[given], any ? merged : undefined);
}

/** Go MySQL driver `tls` parameter: true, false, skip-verify, preferred (and `ssl-mode` as mysql clients spell it). */
export function mysqlTls(description: string, params: Record<string, string>, tls: BackendTLS | undefined): ConnectionOptions | undefined {
  const modes: Record<string, TlsMode> = {
    true: 'verify-full',
    false: 'disable',
    'skip-verify': 'require',
    preferred: 'prefer',
    disabled: 'disable',
    required: 'require',
    verify_ca: 'verify-ca',
    verify_identity: 'verify-full',
  };
  const given = (params.tls ?? params['ssl-mode'])?.toLowerCase();
  if (given !== undefined && !(given in modes)) {
    throw new Error(`${description}: tls "${given}" is not one of true, false, skip-verify, preferred (or ssl-mode DISABLED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY)`);
  }
  const mode = given === undefined ? undefined : modes[given];
  return tlsOptions(description, mode, mode === 'require' && given === 'skip-verify' ? { ...tls, skipVerify: true } : tls);
}

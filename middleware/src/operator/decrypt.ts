/**
 * Sealed endpoints: AES-256-GCM, stored as base64 of `nonce(12) || ciphertext || tag(16)` (what Go's
 * `gcm.Seal(nonce, nonce, plaintext, nil)` produces, so values sealed for the old operator still open).
 * A decrypt Secret may hold several keys; every key is tried, so keys can be rotated without re-sealing
 * everything at once. Errors never contain the plaintext or the sealed value.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
export const MIN_SEALED_BYTES = NONCE_BYTES + 1 + TAG_BYTES;

export class DecryptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecryptError';
  }
}

/** A named AES-256 key (the name is the decrypt Secret's data key, safe to show). */
export interface NamedKey {
  name: string;
  key: Buffer;
}

/**
 * Reads an AES-256 key: 32 raw bytes, or base64 of 32 bytes (surrounding whitespace ignored). Returns
 * undefined when it is neither, so the caller can name the offending entry.
 */
export function parseAesKey(material: Buffer): Buffer | undefined {
  if (material.length === KEY_BYTES) {
    // 32 bytes could also be base64 text of 24 bytes; that is not a valid key, so raw wins.
    return Buffer.from(material);
  }
  const text = material.toString('latin1').trim();
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(text) || /^[A-Za-z0-9_-]+={0,2}$/.test(text)) {
    const decoded = Buffer.from(text, /[-_]/.test(text) ? 'base64url' : 'base64');
    if (decoded.length === KEY_BYTES) return decoded;
  }
  return undefined;
}

/** The usable keys of a decrypt Secret's data, in data-key order; `source` names the Secret in errors. */
export function keysFromSecretData(data: Map<string, Buffer> | Record<string, Buffer>, source: string): NamedKey[] {
  const entries = data instanceof Map ? [...data.entries()] : Object.entries(data);
  const keys: NamedKey[] = [];
  for (const [name, material] of entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const key = parseAesKey(material);
    if (key) keys.push({ name, key });
  }
  if (keys.length === 0) {
    throw new DecryptError(
      `Secret ${source} holds no AES-256 key: each data value must be 32 bytes or base64 of 32 bytes ` +
        '(create one with `harikube topologyconfig keygen`)',
    );
  }
  return keys;
}

/** Seals `plaintext` with `key` under a fresh random nonce; returns the base64 text for `endpoint`. */
export function sealEndpoint(plaintext: string, key: Buffer): string {
  if (key.length !== KEY_BYTES) throw new DecryptError(`the key is ${key.length} bytes; AES-256 needs ${KEY_BYTES}`);
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64');
}

/**
 * Opens a sealed endpoint with the first key that authenticates it. Throws `DecryptError` saying what is wrong
 * (bad base64, too short, no key fits) without showing the value.
 */
export function openEndpoint(sealed: string, keys: NamedKey[]): { plaintext: string; keyName: string } {
  const text = sealed.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 === 1) {
    throw new DecryptError('is not valid base64 (expected base64 of nonce(12) || ciphertext || tag(16))');
  }
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length < MIN_SEALED_BYTES) {
    throw new DecryptError(
      `is ${bytes.length} bytes after base64 decoding; a sealed endpoint has at least ${MIN_SEALED_BYTES} ` +
        '(12-byte nonce, ciphertext, 16-byte tag)',
    );
  }
  const nonce = bytes.subarray(0, NONCE_BYTES);
  const tag = bytes.subarray(bytes.length - TAG_BYTES);
  const body = bytes.subarray(NONCE_BYTES, bytes.length - TAG_BYTES);
  for (const { name, key } of keys) {
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, nonce);
      decipher.setAuthTag(tag);
      const plaintext = Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
      return { plaintext, keyName: name };
    } catch {
      // authentication failed: not this key; try the next one
    }
  }
  throw new DecryptError(
    `cannot be decrypted with any of the ${keys.length} key(s) (${keys.map((k) => k.name).join(', ')}): ` +
      'it was sealed with another key or is corrupt',
  );
}

/**
 * `harikube topologyconfig keygen | encrypt | decrypt`: helpers for sealed endpoints (see decrypt.ts).
 * Output goes to stdout only; nothing secret is logged.
 */
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { DecryptError, KEY_BYTES, openEndpoint, parseAesKey, sealEndpoint } from './decrypt.js';
import { FlagError, flagHelp, parseFlags, type FlagSpec } from './flags.js';

const FLAGS: Record<string, FlagSpec> = {
  'key-file': { type: 'string', help: 'file holding the AES-256 key: 32 raw bytes or base64 of 32 bytes' },
  endpoint: { type: 'string', help: 'encrypt: the plaintext endpoint (default: read from stdin; prefer stdin, it stays out of shell history)' },
  value: { type: 'string', help: 'decrypt: the base64 sealed endpoint (default: read from stdin)' },
  help: { type: 'boolean', default: false, help: 'show this help' },
};

function usage(): string {
  return [
    'usage: harikube topologyconfig keygen                         print a new base64 AES-256 key',
    '       harikube topologyconfig encrypt --key-file K [--endpoint E]   seal an endpoint for spec.backends[].endpoint',
    '       harikube topologyconfig decrypt --key-file K [--value V]      open a sealed endpoint (debugging)',
    '',
    'Store the key in the Secret named by spec.endpointDecryptSecret, e.g.',
    '  kubectl -n harikube create secret generic topology-keys --from-file=key-2025=KEYFILE',
    'Several keys may sit in that Secret; every key is tried, so keys can be rotated.',
    '',
    flagHelp(FLAGS),
  ].join('\n');
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function loadKey(file: unknown): Buffer {
  if (typeof file !== 'string' || !file) throw new FlagError('--key-file is required');
  let material: Buffer;
  try {
    material = readFileSync(file);
  } catch (e) {
    throw new FlagError(`--key-file ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  const key = parseAesKey(material);
  if (!key) throw new FlagError(`--key-file ${file}: must hold ${KEY_BYTES} raw bytes or base64 of ${KEY_BYTES} bytes`);
  return key;
}

export async function main(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  try {
    const { flags, positional } = parseFlags(rest, FLAGS);
    if (!sub || sub === '--help' || sub === 'help' || flags.help) {
      process.stdout.write(usage() + '\n');
      return sub ? 0 : 2;
    }
    if (positional.length) throw new FlagError(`unexpected argument "${positional[0]}"`);
    switch (sub) {
      case 'keygen':
        process.stdout.write(randomBytes(KEY_BYTES).toString('base64') + '\n');
        return 0;
      case 'encrypt': {
        const key = loadKey(flags['key-file']);
        // One trailing newline (from echo or a file) is not part of the endpoint.
        const endpoint = typeof flags.endpoint === 'string' ? flags.endpoint : (await readStdin()).replace(/\r?\n$/, '');
        if (!endpoint) throw new FlagError('no endpoint given: pass --endpoint or pipe it on stdin');
        process.stdout.write(sealEndpoint(endpoint, key) + '\n');
        return 0;
      }
      case 'decrypt': {
        const key = loadKey(flags['key-file']);
        const value = typeof flags.value === 'string' ? flags.value : (await readStdin()).trim();
        if (!value) throw new FlagError('no value given: pass --value or pipe it on stdin');
        try {
          process.stdout.write(openEndpoint(value, [{ name: String(flags['key-file']), key }]).plaintext + '\n');
        } catch (e) {
          if (!(e instanceof DecryptError)) throw e;
          process.stderr.write(`harikube topologyconfig decrypt: the value ${e.message}\n`);
          return 1;
        }
        return 0;
      }
      default:
        throw new FlagError(`unknown subcommand "${sub}"`);
    }
  } catch (e) {
    if (!(e instanceof FlagError)) throw e;
    process.stderr.write(`harikube topologyconfig: ${e.message}\n\n${usage()}\n`);
    return 2;
  }
}

/**
 * `harikube migrate status`: what the online migration of a running middleware is doing, read from its
 * metrics port (GET /migrations, the mover's status). Prints once, or with `--watch` follows until no
 * migration is active (exit 0). A terminal gets progress bars redrawn in place; logs and CI get plain lines.
 */
import { parseArgs } from 'node:util';
import { parseDuration } from '../topology/duration.js';
import type { MigrationStatus } from '../migration/status.js';
import { plainLines, terminalFrame } from './render.js';

export const STATUS_FLAGS = {
  'metrics-address': {
    type: 'string',
    default: '127.0.0.1:8080',
    description: "The middleware's metrics address (its --metrics-bind-address): host:port, or a URL such as http://10.0.0.5:8080.",
  },
  watch: { type: 'boolean', description: 'Follow the migration until none is active (then exit 0).' },
  interval: { type: 'string', default: '2s', description: 'How often --watch reads the status.' },
  output: { type: 'string', default: 'text', description: 'text, or json (the status as GET /migrations returns it; one object per line with --watch).' },
  help: { type: 'boolean', description: 'Print this help.' },
} as const;

/** How long --watch keeps trying a middleware that stopped answering (a restart) before it gives up. */
const UNREACHABLE_GIVE_UP_MS = 60_000;
const REQUEST_TIMEOUT_MS = 5_000;

export class StatusError extends Error {}

/** The /migrations URL for a `--metrics-address` value. */
export function migrationsUrl(address: string): URL {
  const value = address.trim();
  if (/^https?:\/\//i.test(value)) {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw new StatusError(`--metrics-address "${address}": not a valid URL; use host:port or http://host:port`);
    }
    if (url.pathname === '' || url.pathname === '/') url.pathname = '/migrations';
    return url;
  }
  const m = /^(\[[^\]]*\]|[^:/]*):(\d+)$/.exec(value);
  if (!m || Number(m[2]) > 65535) throw new StatusError(`--metrics-address "${address}": expected host:port (e.g. 127.0.0.1:8080) or a URL`);
  return new URL(`http://${m[1] || '127.0.0.1'}:${m[2]}/migrations`);
}

function isStatus(v: unknown): v is MigrationStatus {
  const s = v as MigrationStatus;
  return !!s && typeof s === 'object' && typeof s.active === 'boolean' && Array.isArray(s.sources);
}

/** Reads the status once; errors say what was tried, what happened and what to do. */
export async function fetchStatus(url: URL): Promise<MigrationStatus> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${REQUEST_TIMEOUT_MS / 1000}s` : (e.cause?.code ?? e.cause?.message ?? e.message);
    throw new StatusError(
      `cannot reach the middleware at ${url.href}: ${why}. Is \`harikube serve\` running there, with its --metrics-bind-address on that address? ` +
        'Pass that address with --metrics-address host:port (in Kubernetes: kubectl port-forward to the pod\'s port 8080 first).',
    );
  }
  const body = await res.text();
  if (res.status === 404) {
    throw new StatusError(`${url.href} answered 404: no migration status there (a HariKube middleware older than online migration, a standby replica of a leader-elected layer, or another service on that port); check --metrics-address`);
  }
  if (res.status !== 200) throw new StatusError(`${url.href} answered HTTP ${res.status}: ${body.slice(0, 200).trim()}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = undefined;
  }
  if (!isStatus(parsed)) throw new StatusError(`${url.href} did not answer a migration status (got ${JSON.stringify(body.slice(0, 80))}); check --metrics-address`);
  return parsed;
}

export function statusUsage(): string {
  const lines = [
    'usage: harikube migrate status [--metrics-address HOST:PORT] [--watch] [--output text|json]',
    '',
    "Shows the online migration of a running middleware (from its metrics port): per source backend the keys",
    'moved of the keys to move, the rate, the time left, failed steps; and which emptied databases are safe to',
    'delete. A terminal gets progress bars redrawn in place; otherwise plain lines.',
    '',
    'flags:',
  ];
  for (const [name, spec] of Object.entries(STATUS_FLAGS)) {
    const def = 'default' in spec ? ` (default ${JSON.stringify(spec.default)})` : '';
    lines.push(`  --${name}${spec.type === 'string' ? ' VALUE' : ''}`, `      ${spec.description}${def}`);
  }
  lines.push('', 'exit codes: 0 shown (with --watch: no migration active any more), 1 the middleware cannot be read, 2 usage error');
  return lines.join('\n');
}

export interface StatusIo {
  out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  err: (text: string) => void;
}

export async function statusMain(args: string[], io: StatusIo = { out: process.stdout, err: (t) => process.stderr.write(t) }): Promise<number> {
  let url: URL;
  let intervalMs: number;
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args, options: STATUS_FLAGS, strict: true, allowPositionals: false }).values;
    if (values.help) {
      io.out.write(`${statusUsage()}\n`);
      return 0;
    }
    url = migrationsUrl(values['metrics-address'] as string);
    if (values.output !== 'text' && values.output !== 'json') throw new StatusError(`--output "${values.output}": use text or json`);
    try {
      intervalMs = parseDuration(values.interval as string);
    } catch (e) {
      throw new StatusError(`--interval: ${(e as Error).message}`);
    }
    if (intervalMs <= 0) throw new StatusError('--interval must be above 0');
  } catch (e) {
    io.err(`harikube migrate status: ${(e as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, '')}\n\n${statusUsage()}\n`);
    return 2;
  }
  const json = values.output === 'json';
  const watch = values.watch === true;
  const tty = !json && io.out.isTTY === true;
  let drawn = 0;
  const show = (status: MigrationStatus) => {
    if (json) {
      io.out.write(`${JSON.stringify(status)}\n`);
    } else if (tty) {
      const lines = terminalFrame(status, io.out.columns ?? 100);
      // back to the first line of the previous frame, clear it and what follows, draw the new one
      io.out.write(`${drawn ? `\x1b[${drawn}F\x1b[J` : ''}${lines.join('\n')}\n`);
      drawn = lines.length;
    } else {
      io.out.write(`${plainLines(status, watch ? new Date() : undefined).join('\n')}\n`);
    }
  };

  let unreachableSince: number | undefined;
  let read = false;
  for (;;) {
    let status: MigrationStatus;
    try {
      status = await fetchStatus(url);
      unreachableSince = undefined;
      read = true;
    } catch (e) {
      // the first read failing is a wrong address or a middleware that is not there: say so at once
      if (!read || !watch) {
        io.err(`harikube migrate status: ${(e as Error).message}\n`);
        return 1;
      }
      unreachableSince ??= Date.now();
      if (Date.now() - unreachableSince >= UNREACHABLE_GIVE_UP_MS) {
        io.err(`harikube migrate status: ${(e as Error).message} (unreachable for ${UNREACHABLE_GIVE_UP_MS / 1000}s: giving up)\n`);
        return 1;
      }
      // a middleware that restarts is back within seconds: keep following
      io.err(`harikube migrate status: ${(e as Error).message}; retrying for up to ${UNREACHABLE_GIVE_UP_MS / 1000}s\n`);
      drawn = 0;
      await new Promise((r) => setTimeout(r, intervalMs));
      continue;
    }
    show(status);
    if (!watch || !status.active) return 0;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

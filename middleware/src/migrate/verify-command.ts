/**
 * `harikube migrate verify`: the check an operator runs before deleting an old database. Opens the default
 * backend as the middleware does (same --endpoint and TLS flags), the topology saved there and the backends of
 * migrations in progress, scans every one of them for keys living outside their owner, and checks the
 * databases named with --retired-endpoint. Reads only: safe beside a running middleware.
 *
 * Exit codes: 0 every key is where the topology routes it (and every --retired-endpoint is safe to delete),
 * 1 keys outside their owner or a retired database that is not safe to delete, 2 usage error or a database
 * that cannot be read.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { openBackend, type Backend } from '../backends/index.js';
import type { BackendRule } from '../topology/schema.js';
import { parseEndpoint, redactEndpoint } from '../topology/endpoint.js';
import { RoutedBackend } from '../router/routed-backend.js';
import { DATABASE_FLAG_NAMES, databaseConfig, FlagError, SERVE_FLAGS, type DatabaseConfig } from '../server/flags.js';
import { checkRetired, clusterIdOf, verifyPlacement, type VerifyReport } from './verify.js';

type Spec = { type: 'string' | 'boolean'; default?: string; description: string; multiple?: boolean };

/** The database flags are `serve`'s own (one definition of their names and meaning). */
export const VERIFY_FLAGS: Record<string, Spec> = {
  ...Object.fromEntries(DATABASE_FLAG_NAMES.map((n) => [n, SERVE_FLAGS[n] as Spec])),
  endpoint: {
    type: 'string',
    description:
      "The middleware's default backend, exactly as its --endpoint: sqlite://PATH, postgres://..., mysql://... (a SQLite file must exist). Without the flag: $HARIKUBE_ENDPOINT, else sqlite://./db/state.db.",
  },
  'retired-endpoint': {
    type: 'string',
    multiple: true,
    description: 'A database no rule routes to any more that you want to delete (repeatable): says whether it is empty and safe to delete.',
  },
  output: { type: 'string', default: 'text', description: 'text, or json for scripts.' },
  help: { type: 'boolean', description: 'Print this help.' },
};

export function verifyUsage(): string {
  const lines = [
    'usage: harikube migrate verify [--endpoint ENDPOINT] [TLS flags] [--retired-endpoint ENDPOINT]... [--output text|json]',
    '',
    'Scans every backend of the topology in effect (and those a migration is still emptying) for keys living',
    "outside the backend the topology routes them to. Give it the middleware's own --endpoint and TLS flags.",
    'Read-only: run it beside the running middleware, before you delete an old database.',
    '',
    'flags:',
  ];
  for (const [name, spec] of Object.entries(VERIFY_FLAGS)) {
    const def = spec.default !== undefined ? ` (default ${JSON.stringify(spec.default)})` : '';
    lines.push(`  --${name}${spec.type === 'string' ? ' VALUE' : ''}`, `      ${spec.description}${def}`);
  }
  lines.push('', 'exit codes: 0 every key is in place (and every --retired-endpoint is safe to delete), 1 not so, 2 usage error or a database that cannot be read');
  return lines.join('\n');
}

function rulesBackend(cfg: DatabaseConfig): (rule: BackendRule) => Backend {
  return (rule) => openBackend(rule.endpoint, { tls: rule.backendTLS, pool: rule.connectionPool, queryTimeoutMs: cfg.queryTimeoutMs, mustExist: true });
}

function printText(report: VerifyReport, out: (t: string) => void): void {
  const lines: string[] = [`Scanned ${report.backends.length} backend${report.backends.length === 1 ? '' : 's'} of middleware cluster ${report.clusterId} (newest revision ${report.revision}):`];
  for (const b of report.backends) {
    const state = b.misplaced ? `${b.misplaced} outside their owner` : 'all in place';
    lines.push(`  ${b.backend} (${b.database}): ${b.keys} keys, ${state}${b.migrationSource ? '; a migration is moving keys out of it' : ''}`);
  }
  if (report.migrating.length) {
    lines.push('', `A migration is in progress: keys are still moving out of ${report.migrating.map((m) => `${m.backend} (${m.database})`).join(', ')}.`);
    lines.push('Keys it has not moved yet are listed below; `harikube migrate status` shows its progress. Run verify again once it is done.');
  }
  if (report.misplaced.length) {
    lines.push('', 'Keys outside their owner:');
    for (const g of report.misplaced) {
      const deleted = g.deleted ? ` (${g.deleted} of them deleted, their history still there)` : '';
      lines.push(`  ${g.backend} (${g.database}) holds ${g.count} keys that ${g.owner} owns${deleted}: ${JSON.stringify(g.first)} .. ${JSON.stringify(g.last)}`);
    }
  }
  if (report.retired.length) {
    lines.push('', 'Databases to retire:');
    for (const r of report.retired) lines.push(`  ${r.database}: ${r.detail}`);
  }
  const misplaced = report.misplaced.reduce((n, g) => n + g.count, 0);
  const unsafe = report.retired.filter((r) => r.verdict !== 'safe-to-delete');
  lines.push('');
  if (misplaced === 0 && unsafe.length === 0) {
    lines.push('OK: every key is in the backend the topology routes it to.');
  } else {
    if (misplaced) lines.push(`NOT OK: ${misplaced} keys live outside the backend the topology routes them to${report.migrating.length ? ' (the migration in progress moves them)' : ''}.`);
    if (unsafe.length) lines.push(`NOT OK: ${unsafe.length} of the databases to retire ${unsafe.length === 1 ? 'is' : 'are'} not confirmed safe to delete.`);
  }
  out(`${lines.join('\n')}\n`);
}

export async function verifyMain(args: string[], io = { out: (t: string) => void process.stdout.write(t), err: (t: string) => void process.stderr.write(t) }): Promise<number> {
  let values: Record<string, string | boolean | string[] | undefined>;
  let cfg: DatabaseConfig;
  try {
    values = parseArgs({ args, options: VERIFY_FLAGS, strict: true, allowPositionals: false }).values as typeof values;
    if (values.help) {
      io.out(`${verifyUsage()}\n`);
      return 0;
    }
    if (values.output !== 'text' && values.output !== 'json') throw new FlagError(`--output "${values.output}": use text or json`);
    cfg = databaseConfig(values as Record<string, string | boolean | undefined>);
    for (const e of [cfg.endpoint, ...((values['retired-endpoint'] as string[] | undefined) ?? [])]) {
      try {
        parseEndpoint(e);
      } catch (err) {
        throw new FlagError(`endpoint "${redactEndpoint(e)}": ${(err as Error).message}`);
      }
    }
  } catch (e) {
    io.err(`harikube migrate verify: ${(e as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, '')}\n\n${verifyUsage()}\n`);
    return 2;
  }
  const where = redactEndpoint(cfg.endpoint);
  const parsed = parseEndpoint(cfg.endpoint);
  // opening a SQLite path creates the file: a mistyped --endpoint must not leave an empty database behind
  if (parsed.kind === 'sqlite' && parsed.path !== ':memory:' && !existsSync(parsed.path)) {
    io.err(`harikube migrate verify: --endpoint ${where}: there is no SQLite database at ${parsed.path}; pass the middleware's own --endpoint\n`);
    return 2;
  }
  // a check never creates what it checks: a missing database is an error, not a new empty one
  const routed = new RoutedBackend(openBackend(cfg.endpoint, { tls: cfg.backendTls, queryTimeoutMs: cfg.queryTimeoutMs, mustExist: true }), rulesBackend(cfg));
  try {
    await routed.open();
  } catch (err) {
    io.err(`harikube migrate verify: cannot open the default backend ${where} or a backend of its topology: ${(err as Error).message}\n`);
    return 2;
  }
  try {
    const clusterId = await clusterIdOf(routed.defaultBackend);
    if (!clusterId) {
      io.err(`harikube migrate verify: --endpoint ${where} holds no HariKube data (no cluster ID in its meta table): pass the middleware's own --endpoint\n`);
      return 2;
    }
    const report = await verifyPlacement(routed.table, await routed.maxRevision(), clusterId);
    for (const e of (values['retired-endpoint'] as string[] | undefined) ?? []) {
      report.retired.push(await checkRetired(routed.table, cfg.endpoint, e, clusterId, existsSync));
    }
    if (values.output === 'json') io.out(`${JSON.stringify(report, null, 2)}\n`);
    else printText(report, io.out);
    const ok = report.misplaced.length === 0 && report.retired.every((r) => r.verdict === 'safe-to-delete');
    return ok ? 0 : 1;
  } catch (err) {
    io.err(`harikube migrate verify: reading ${where} or a backend of its topology failed: ${(err as Error).message}\n`);
    return 2;
  } finally {
    await routed.close();
  }
}

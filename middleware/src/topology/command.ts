/**
 * `harikube topology validate FILE` and `harikube topology diff OLD NEW`.
 *
 * Exit codes: 0 valid / no differences, 1 differences found, 2 usage error or invalid/unreadable input
 * (so `diff` can gate a pipeline like `diff(1)` does). `-` reads standard input.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { formatIssue, validateTopology, type TopologyIssue } from './validate.js';
import { validateTopologyConfigResource } from './topologyconfig.js';
import { ROUTING_TABLE_KEY } from './compile.js';
import { TOPOLOGY_DOCUMENT_KEY } from './secret-layout.js';
import { diffTopologies, formatChange, loadTopologyView, TopologyInputError } from './diff.js';

const USAGE = `usage:
  harikube topology validate FILE     validate a topology document (or a ConfigMap/Secret holding
                                      "${TOPOLOGY_DOCUMENT_KEY}", or a TopologyConfig resource)
  harikube topology diff OLD NEW      rule-level changes between two topologies: documents, compiled
                                      routing tables ("${ROUTING_TABLE_KEY}"), ConfigMaps/Secrets holding
                                      either, or TopologyConfig resources; endpoints are printed redacted

flags:
  --json        machine-readable output
  -h, --help    this help

FILE may be "-" for standard input.
exit codes: 0 valid / no changes, 1 changes found, 2 usage error or invalid input`;

interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  readText: (path: string) => Promise<string>;
}

const defaultIo: Io = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  readText: async (path) => {
    if (path !== '-') return readFile(path, 'utf8');
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
};

/** What `validate` checks: the document itself, or the one inside a ConfigMap/Secret/TopologyConfig. */
export function validateText(text: string): { ok: true; rules: number } | { ok: false; issues: TopologyIssue[] } {
  let parsed: unknown;
  try {
    parsed = text.trim() === '' ? { backends: [] } : parseYaml(text);
  } catch (e) {
    return { ok: false, issues: [{ field: '(document)', message: `is not valid YAML: ${(e as Error).message}` }] };
  }
  const p = parsed as Record<string, any> | null;
  if (p && typeof p === 'object' && p.kind === 'TopologyConfig') {
    const r = validateTopologyConfigResource(p.spec);
    return r.ok ? { ok: true, rules: r.value.backends.length } : r;
  }
  if (p && typeof p === 'object' && (p.kind === 'ConfigMap' || p.kind === 'Secret')) {
    const encoded = p.kind === 'Secret' ? p.data?.[TOPOLOGY_DOCUMENT_KEY] : undefined;
    const inner = p.stringData?.[TOPOLOGY_DOCUMENT_KEY] ?? (encoded !== undefined ? Buffer.from(String(encoded), 'base64').toString('utf8') : p.data?.[TOPOLOGY_DOCUMENT_KEY]);
    if (typeof inner !== 'string') {
      return { ok: false, issues: [{ field: '(document)', message: `${p.kind} has no "${TOPOLOGY_DOCUMENT_KEY}" key` }] };
    }
    return validateText(inner);
  }
  const r = validateTopology(parsed);
  return r.ok ? { ok: true, rules: r.value.backends.length } : r;
}

function parseFlags(args: string[]): { json: boolean; help: boolean; positional: string[]; unknown: string[] } {
  const positional: string[] = [];
  const unknown: string[] = [];
  let json = false;
  let help = false;
  for (const a of args) {
    if (a === '--json') json = true;
    else if (a === '-h' || a === '--help') help = true;
    else if (a.startsWith('-') && a !== '-') unknown.push(a);
    else positional.push(a);
  }
  return { json, help, positional, unknown };
}

async function validateCommand(args: string[], io: Io): Promise<number> {
  const f = parseFlags(args);
  if (f.help) return io.out(USAGE + '\n'), 0;
  if (f.unknown.length || f.positional.length !== 1) {
    io.err(`harikube topology validate: expected one FILE${f.unknown.length ? `; unknown flag ${f.unknown[0]}` : ''}\n\n${USAGE}\n`);
    return 2;
  }
  const file = f.positional[0]!;
  let text: string;
  try {
    text = await io.readText(file);
  } catch (e) {
    io.err(`harikube topology validate: cannot read ${file}: ${(e as Error).message}\n`);
    return 2;
  }
  const result = validateText(text);
  if (f.json) {
    io.out(JSON.stringify(result.ok ? { file, valid: true, rules: result.rules } : { file, valid: false, issues: result.issues }) + '\n');
  } else if (result.ok) {
    io.out(`${file}: valid (${result.rules} rule${result.rules === 1 ? '' : 's'})\n`);
  } else {
    io.err(`${file}: invalid topology\n${result.issues.map((i) => `  ${formatIssue(i)}\n`).join('')}`);
  }
  return result.ok ? 0 : 2;
}

async function diffCommand(args: string[], io: Io): Promise<number> {
  const f = parseFlags(args);
  if (f.help) return io.out(USAGE + '\n'), 0;
  if (f.unknown.length || f.positional.length !== 2) {
    io.err(`harikube topology diff: expected OLD and NEW${f.unknown.length ? `; unknown flag ${f.unknown[0]}` : ''}\n\n${USAGE}\n`);
    return 2;
  }
  const [oldFile, newFile] = f.positional as [string, string];
  try {
    const [before, after] = await Promise.all([
      io.readText(oldFile).then((t) => loadTopologyView(t, oldFile)),
      io.readText(newFile).then((t) => loadTopologyView(t, newFile)),
    ]);
    const changes = diffTopologies(before, after);
    if (f.json) io.out(JSON.stringify({ old: oldFile, new: newFile, changes }) + '\n');
    else if (changes.length === 0) io.out('no routing changes\n');
    else io.out(`${changes.map(formatChange).join('\n')}\n${changes.length} change${changes.length === 1 ? '' : 's'}\n`);
    return changes.length ? 1 : 0;
  } catch (e) {
    const message = e instanceof TopologyInputError ? e.message : `cannot read input: ${(e as Error).message}`;
    io.err(`harikube topology diff: ${message}\n`);
    return 2;
  }
}

/** Entry point used by `cli.ts`; `io` is injectable for tests. */
export async function main(args: string[], io: Io = defaultIo): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'validate':
      return validateCommand(rest, io);
    case 'diff':
      return diffCommand(rest, io);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      io.out(USAGE + '\n');
      return sub === undefined ? 2 : 0;
    default:
      io.err(`harikube topology: unknown subcommand "${sub}"\n\n${USAGE}\n`);
      return 2;
  }
}

#!/usr/bin/env node
/**
 * `harikube`: one executable, a subcommand per concern. Each command module exports
 * `main(args: string[]): Promise<number>` (the exit code) and is loaded only when used, so
 * `harikube serve` does not pay for the operator's Kubernetes client.
 */
import { pathToFileURL } from 'node:url';

type Command = { summary: string; load: () => Promise<{ main(args: string[]): Promise<number> }> };

const COMMANDS: Record<string, Command> = {
  serve: { summary: 'run the etcd-compatible middleware', load: () => import('./server/serve.js') },
  operator: {
    summary: 'run the TopologyConfig operator (`operator crd` prints the CRD)',
    load: () => import('./operator/command.js'),
  },
  topologyconfig: {
    summary: 'TopologyConfig helpers (`topologyconfig encrypt --key-file K`)',
    load: () => import('./operator/encrypt-command.js'),
  },
  topology: {
    summary: 'topology helpers (`topology validate FILE`, `topology diff OLD NEW`)',
    load: () => import('./topology/command.js'),
  },
  migrate: {
    summary: 'online migration (`migrate status [--watch]`, `migrate verify --endpoint E`)',
    load: () => import('./migrate/command.js'),
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    'usage: harikube <command> [flags]',
    '',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `harikube <command> --help` for the flags of a command.',
  ].join('\n');
}

export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`harikube: unknown command "${name}"\n\n${usage()}\n`);
    return 2;
  }
  return (await command.load()).main(rest);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  run(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`harikube: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}

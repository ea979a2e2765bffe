/**
 * `harikube migrate status|verify`: watching and checking the online migration that moves keys when a
 * topology change routes them to another backend (architecture.md, "Online migration").
 */
const USAGE = `usage:
  harikube migrate status [--metrics-address HOST:PORT] [--watch]   progress of a running middleware's migration
  harikube migrate verify [--endpoint ENDPOINT] [--retired-endpoint ENDPOINT]...
                                                                    scan the databases for keys outside their owner

Run \`harikube migrate <command> --help\` for its flags.`;

export async function main(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  // loaded when used: `status` needs no database drivers
  if (sub === 'status') return (await import('./status-command.js')).statusMain(rest);
  if (sub === 'verify') return (await import('./verify-command.js')).verifyMain(rest);
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return sub === undefined ? 2 : 0;
  }
  process.stderr.write(`harikube migrate: unknown command "${sub}"\n\n${USAGE}\n`);
  return 2;
}

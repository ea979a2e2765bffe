/**
 * How the tests run the `harikube` command (middleware, operator, migrate): one definition for every test.
 *
 * `npm test` builds the package first and sets HARIKUBE_TEST_CLI=bin/harikube.js, so each process the run
 * starts is the compiled CLI under plain node, as users and the image run it (a start takes about half the
 * time of the sources under tsx, and the run starts hundreds). A test file run on its own
 * (`node --import tsx --test FILE`) runs the sources under tsx, so an edit needs no build.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The CLI's source entry (what HARIKUBE_TEST_CLI replaces). */
export const CLI_SOURCE = path.join(REPO_ROOT, 'middleware', 'src', 'cli.ts');

function cliEntry(): string {
  const built = process.env.HARIKUBE_TEST_CLI;
  if (!built) return CLI_SOURCE;
  const entry = path.resolve(REPO_ROOT, built);
  if (!existsSync(entry)) throw new Error(`HARIKUBE_TEST_CLI=${built}: ${entry} does not exist (run npm run build, or unset it to run the sources under tsx)`);
  return entry;
}

/** The script node runs: the built CLI under npm test, else the source. */
export const CLI_ENTRY = cliEntry();

/** `node` arguments that run the CLI: `node ...CLI_ARGS serve ...`; node flags go before them. */
export const CLI_ARGS: readonly string[] = CLI_ENTRY.endsWith('.ts') ? ['--import', 'tsx', CLI_ENTRY] : [CLI_ENTRY];

/**
 * The same with test plumbing written in TypeScript preloaded (`--import some-stand-in.ts`). Such a process
 * runs the sources under tsx whatever HARIKUBE_TEST_CLI says: its worker threads inherit the preloads, and
 * only the source build's SQLite read worker boots through tsx (the compiled one cannot load a .ts preload).
 */
export function cliArgsWithPreloads(nodeArgs: readonly string[]): string[] {
  return nodeArgs.length === 0 ? [...CLI_ARGS] : ['--import', 'tsx', ...nodeArgs, CLI_SOURCE];
}

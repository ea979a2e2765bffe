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

function cliArgs(): readonly string[] {
  const built = process.env.HARIKUBE_TEST_CLI;
  if (!built) return ['--import', 'tsx', CLI_SOURCE];
  const entry = path.resolve(REPO_ROOT, built);
  if (!existsSync(entry)) throw new Error(`HARIKUBE_TEST_CLI=${built}: ${entry} does not exist (run npm run build, or unset it to run the sources under tsx)`);
  return [entry];
}

/** `node` arguments that run the CLI: `node ...CLI_ARGS serve ...`; node flags go before them. */
export const CLI_ARGS: readonly string[] = cliArgs();

/** The `harikube` command as users run it (support/cli.ts): for the tests of its subcommands against real servers. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CLI_ARGS, REPO_ROOT } from './cli.js';

const run = promisify(execFile);

/** Runs `harikube ARGS` (2 minutes at most); resolves with its exit code and output whatever the code. */
export async function harikube(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [...CLI_ARGS, ...args], { cwd: REPO_ROOT, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

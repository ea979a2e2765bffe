/**
 * The middleware as production runs it (tsc output under plain node, as bin/harikube.js and the image do),
 * the bench's default; `--tsx` runs the sources under tsx instead. tsx keeps an esbuild loader and a hooks worker thread in the
 * process, which shows in RSS and startup. Compiled into bench/.tmp/ (gitignored) so node still resolves
 * the repository's node_modules, and removed at cleanup; only middleware/ is compiled, so work in
 * progress elsewhere in the tree cannot break it.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../test/support/middleware.js';
import { onCleanup } from './cleanup.js';

const TSC = path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const COMPILE_TIMEOUT_MS = 180_000;

/** Compiles middleware/ and returns the path of the compiled cli.js. */
export async function compileMiddleware(): Promise<string> {
  const base = path.join(REPO_ROOT, 'bench', '.tmp');
  await mkdir(base, { recursive: true });
  const dir = await mkdtemp(path.join(base, 'build-'));
  onCleanup(`remove ${dir}`, async () => {
    await rm(dir, { recursive: true, force: true });
    // bench/.tmp itself too, unless another run is using it
    await rmdir(base).catch(() => undefined);
  });
  const tsconfig = path.join(dir, 'tsconfig.json');
  await writeFile(
    tsconfig,
    JSON.stringify({
      extends: path.join(REPO_ROOT, 'tsconfig.json'),
      compilerOptions: { rootDir: REPO_ROOT, outDir: path.join(dir, 'dist'), declaration: false, sourceMap: false },
      include: [path.join(REPO_ROOT, 'middleware', '**', '*.ts')],
    }),
  );
  try {
    await promisify(execFile)(process.execPath, [TSC, '-p', tsconfig], { cwd: REPO_ROOT, timeout: COMPILE_TIMEOUT_MS });
  } catch (err) {
    // type errors still emit JavaScript; only a missing output is fatal
    const cli = path.join(dir, 'dist', 'middleware', 'src', 'cli.js');
    if (!existsSync(cli)) throw new Error(`compiling the middleware failed: ${(err as { stdout?: string }).stdout ?? (err as Error).message}`);
    process.stderr.write(`bench: tsc reported errors while compiling the middleware; using its output anyway\n`);
  }
  return path.join(dir, 'dist', 'middleware', 'src', 'cli.js');
}

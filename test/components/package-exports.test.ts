/**
 * The import path docs/pulumi.md shows works under plain node (no tsx): `import { ... } from 'harikube'` and
 * `harikube/components/<file>.js`, from the built package (`npm run build`), resolved through package.json
 * `exports` exactly as an application stack that depends on the package resolves it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO } from './stack-runner.js';

const run = promisify(execFile);

test('the built package imports under plain node as docs/pulumi.md shows', { timeout: 300_000 }, async (t) => {
  await run(process.execPath, [path.join(REPO, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: REPO });
  // an application project that depends on the package (node_modules/harikube -> the checkout)
  const app = await mkdtemp(path.join(tmpdir(), 'hk-app-'));
  t.after(() => rm(app, { recursive: true, force: true }));
  await mkdir(path.join(app, 'node_modules'));
  await symlink(REPO, path.join(app, 'node_modules', 'harikube'), 'dir');
  await writeFile(path.join(app, 'package.json'), JSON.stringify({ name: 'app', type: 'module' }));
  await writeFile(
    path.join(app, 'index.js'),
    [
      "import { AppTopology, PostgresCluster, HariKubePlatform, appTopologySettings } from 'harikube';",
      "import { AppTopology as Again } from 'harikube/components/appTopology.js';",
      'console.log([AppTopology, PostgresCluster, HariKubePlatform, appTopologySettings].map((f) => typeof f).join(","), Again === AppTopology);',
    ].join('\n'),
  );
  const { stdout } = await run(process.execPath, ['index.js'], { cwd: app });
  assert.equal(stdout.trim(), 'function,function,function,function true');
});

/**
 * One Pulumi operation on one stack, in a process of its own (test/pulumi/harness.ts starts it):
 *
 *   node --import tsx test/pulumi/run-stack.ts '<json RunRequest>' <result.json>
 *
 * The built Pulumi CLI runs the operation (`pulumi up|preview|destroy`) through the Automation API; the stack's
 * program (e.g. stacks/platform/index.ts) runs here, in the Automation API's language host, which the CLI
 * joins with `--client`, because the Node.js language host plugin (pulumi-language-nodejs) is not served by the
 * Go module proxy and cannot be built. Everything else is the real engine, the real providers and the real
 * state backend. A fresh process per operation gives every run a fresh module graph, as `pulumi up` does.
 */
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { LocalWorkspace, PulumiCommand, Stack } from '@pulumi/pulumi/automation/index.js';

export interface RunRequest {
  op: 'up' | 'preview' | 'destroy';
  /** The project directory (a Pulumi.yaml and the stack's config file). */
  workDir: string;
  stack: string;
  /** The program module, run in this process. */
  program: string;
  /** Directory holding bin/pulumi. */
  pulumiRoot: string;
  /** `--diff`. */
  diff?: boolean;
  /** `--expect-no-changes`. */
  expectNoChanges?: boolean;
}

export interface RunResult {
  ok: boolean;
  stdout: string;
  stderr: string;
  error?: string;
  /** up: stack outputs (secrets as plain values, flagged). */
  outputs?: Record<string, { value: unknown; secret: boolean }>;
  /** Operation counts by kind (preview's changeSummary, up's/destroy's resourceChanges). */
  changes?: Record<string, number>;
}

async function run(req: RunRequest): Promise<RunResult> {
  const pulumiCommand = await PulumiCommand.get({ root: req.pulumiRoot, skipVersionCheck: false });
  const program = async () => ({ ...(await import(pathToFileURL(req.program).href)) });
  const ws = await LocalWorkspace.create({ workDir: req.workDir, program, pulumiCommand });
  const stack = await Stack.createOrSelect(req.stack, ws);
  const common = { color: 'never' as const, diff: req.diff };
  if (req.op === 'preview') {
    const r = await stack.preview({ ...common, expectNoChanges: req.expectNoChanges });
    return { ok: true, stdout: r.stdout, stderr: r.stderr, changes: r.changeSummary as Record<string, number> };
  }
  if (req.op === 'up') {
    const r = await stack.up({ ...common, expectNoChanges: req.expectNoChanges });
    return { ok: true, stdout: r.stdout, stderr: r.stderr, outputs: r.outputs, changes: r.summary.resourceChanges as Record<string, number> };
  }
  const r = await stack.destroy({ color: 'never' });
  return { ok: true, stdout: r.stdout, stderr: r.stderr, changes: r.summary.resourceChanges as Record<string, number> };
}

const [reqJson, resultPath] = process.argv.slice(2);
if (!reqJson || !resultPath) {
  process.stderr.write('usage: run-stack.ts <json request> <result.json>\n');
  process.exit(2);
}
run(JSON.parse(reqJson) as RunRequest)
  .then((r) => writeFileSync(resultPath, JSON.stringify(r)))
  .catch((err: unknown) => {
    const e = err as { stdout?: string; stderr?: string; message?: string };
    writeFileSync(resultPath, JSON.stringify({ ok: false, stdout: e.stdout ?? '', stderr: e.stderr ?? '', error: e.message ?? String(err) } satisfies RunResult));
  })
  .finally(() => process.exit(0));

/**
 * The real Pulumi engine for tests: the CLI and the Kubernetes provider built by tools/build.sh, a local state
 * backend (file://), the passphrase secrets provider, and a PULUMI_HOME of its own, all in one temp dir.
 *
 * Nothing may be downloaded: the providers are ambient plugins (on PATH, where the engine looks before its
 * plugin cache), and every HTTP(S) request of the CLI and the providers goes through a recording proxy on
 * loopback that refuses it (`externalRequests` must stay empty; the API server on 127.0.0.1 is exempt through
 * NO_PROXY). The `random` provider is our stand-in (random-provider.ts): the real one is not served by the
 * module proxy.
 *
 *   const p = await PulumiHarness.create(kubeconfigPath);
 *   const dir = p.project('platform', { 'Pulumi.yaml': ..., 'stacks/platform/Pulumi.dev.yaml': ... });
 *   const r = await p.run({ op: 'up', workDir: dir, stack: 'dev', program: '.../stacks/platform/index.ts' });
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { requireToolDir, skipUnlessTool } from '../support/tools.js';
import type { RunRequest, RunResult } from './run-stack.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..', '..');
const RUNNER = path.join(HERE, 'run-stack.ts');
const RANDOM_STAND_IN = path.join(HERE, 'random-provider.ts');
/** A `pulumi up` waits for real objects to settle; 2 shared cores may be busy. */
const RUN_TIMEOUT_MS = 15 * 60_000;

/** The Go tools these tests need. */
export const PULUMI_TOOLS = ['pulumi', 'pulumi-kubernetes', 'kube-apiserver'] as const;

/** Skip message (or false); under HARIKUBE_TEST_REQUIRE_ALL=1 a missing tool throws (CI fails). */
export function pulumiSkip(): string | false {
  for (const tool of PULUMI_TOOLS) {
    const why = skipUnlessTool(tool);
    if (why) return why;
  }
  return false;
}

/**
 * A project file for a copied project: the repository's Pulumi.yaml without `main` (the program runs inline,
 * from the repository; the CLI would otherwise look for it next to the copy).
 */
export function projectFile(repoPulumiYaml: string): string {
  const doc = parseYaml(readFileSync(repoPulumiYaml, 'utf8')) as Record<string, unknown>;
  delete doc.main;
  return stringifyYaml(doc);
}

export class PulumiHarness {
  /** Requests the CLI or a provider tried to send off this machine (method and target). */
  readonly externalRequests: string[] = [];
  readonly passphrase = 'harikube test passphrase';

  private constructor(
    readonly dir: string,
    private readonly proxy: http.Server,
    private readonly proxyPort: number,
    readonly kubeconfigPath: string,
  ) {}

  static async create(kubeconfigPath: string): Promise<PulumiHarness> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'hk-pulumi-'));
    for (const d of ['home', 'state', 'bin', 'projects']) mkdirSync(path.join(dir, d));
    // The random stand-in as an ambient plugin: an executable named pulumi-resource-random on PATH.
    const tsx = fileURLToPath(import.meta.resolve('tsx'));
    const script = path.join(dir, 'bin', 'pulumi-resource-random');
    writeFileSync(script, `#!/bin/sh\nexec "${process.execPath}" --import "${pathToFileURL(tsx).href}" "${RANDOM_STAND_IN}" "$@"\n`);
    chmodSync(script, 0o755);
    let harness: PulumiHarness | undefined;
    const proxy = http.createServer((req, res) => {
      harness?.externalRequests.push(`${req.method} ${req.url}`);
      res.writeHead(403).end('harikube tests: no network');
    });
    proxy.on('connect', (req, socket: net.Socket) => {
      harness?.externalRequests.push(`CONNECT ${req.url}`);
      socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
    });
    const port = await new Promise<number>((resolve) => proxy.listen(0, '127.0.0.1', () => resolve((proxy.address() as net.AddressInfo).port)));
    harness = new PulumiHarness(dir, proxy, port, kubeconfigPath);
    return harness;
  }

  /** Environment of the CLI (and so of the providers it starts). */
  env(): NodeJS.ProcessEnv {
    const bins = [requireToolDir('pulumi'), requireToolDir('pulumi-kubernetes'), path.join(this.dir, 'bin')];
    const proxy = `http://127.0.0.1:${this.proxyPort}`;
    return {
      ...process.env,
      PATH: [...bins, process.env.PATH ?? ''].join(path.delimiter),
      PULUMI_HOME: path.join(this.dir, 'home'),
      PULUMI_BACKEND_URL: `file://${path.join(this.dir, 'state')}`,
      PULUMI_CONFIG_PASSPHRASE: this.passphrase,
      PULUMI_SKIP_UPDATE_CHECK: 'true',
      PULUMI_DIY_BACKEND_NO_LEGACY_WARNING: 'true',
      KUBECONFIG: this.kubeconfigPath,
      HTTP_PROXY: proxy,
      HTTPS_PROXY: proxy,
      http_proxy: proxy,
      https_proxy: proxy,
      NO_PROXY: '127.0.0.1,localhost',
      no_proxy: '127.0.0.1,localhost',
    };
  }

  /** Writes a project directory (files relative to it) and returns its path; rewrites files on a second call. */
  project(name: string, files: Record<string, string>): string {
    const workDir = path.join(this.dir, 'projects', name);
    for (const [rel, content] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(workDir, rel)), { recursive: true });
      writeFileSync(path.join(workDir, rel), content);
    }
    return workDir;
  }

  /**
   * A changed copy of a stack's program (`edit` of its text), written into the project `name`: relative
   * imports point back at the repository, packages resolve from its node_modules. For a change a team would
   * make in its program, without touching the repository.
   */
  program(name: string, original: string, edit: (text: string) => string): string {
    const workDir = path.join(this.dir, 'projects', name);
    mkdirSync(workDir, { recursive: true });
    if (!existsSync(path.join(workDir, 'node_modules'))) symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(workDir, 'node_modules'));
    const text = readFileSync(original, 'utf8').replace(/from '(\.\.?\/[^']+)'/g, (_m, rel: string) => `from '${pathToFileURL(path.resolve(path.dirname(original), rel)).href}'`);
    const edited = edit(text);
    if (edited === text) throw new Error(`program(${name}): the edit changed nothing`);
    const file = path.join(workDir, `program-${Date.now()}.ts`);
    writeFileSync(file, edited);
    return file;
  }

  /** Runs one operation in a child process (run-stack.ts); resolves with its result, also on failure. */
  async run(req: Omit<RunRequest, 'pulumiRoot'>): Promise<RunResult> {
    const resultPath = path.join(this.dir, `result-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
    const full: RunRequest = { ...req, pulumiRoot: path.dirname(requireToolDir('pulumi')) };
    const log: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', RUNNER, JSON.stringify(full), resultPath], {
        cwd: REPO_ROOT,
        env: this.env(),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout.on('data', (d: Buffer) => log.push(d.toString()));
      child.stderr.on('data', (d: Buffer) => log.push(d.toString()));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`pulumi ${req.op} ${req.stack}: no result after ${RUN_TIMEOUT_MS} ms\n${log.join('')}`));
      }, RUN_TIMEOUT_MS);
      child.once('error', reject);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    let result: RunResult;
    try {
      result = JSON.parse(readFileSync(resultPath, 'utf8')) as RunResult;
    } catch {
      throw new Error(`pulumi ${req.op} ${req.stack}: the runner wrote no result\n${log.join('')}`);
    }
    if (log.length) result.stderr = `${result.stderr}\n--- runner ---\n${log.join('')}`;
    return result;
  }

  /** Runs and throws (with the CLI's output) unless the operation succeeded. */
  async ok(req: Omit<RunRequest, 'pulumiRoot'>): Promise<RunResult> {
    const r = await this.run(req);
    if (!r.ok) throw new Error(`pulumi ${req.op} ${req.stack} failed: ${r.error}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`);
    return r;
  }

  async dispose(): Promise<void> {
    await new Promise<void>((resolve) => this.proxy.close(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}


/**
 * A command run to its end, bounded: killed (SIGKILL) once `timeoutMs` has passed, its stderr in every
 * error. For the short-lived clients the tests and the bench run (etcdctl, the Go load generator); servers
 * that run beside a test are `ServerProcess` (child.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface RunOptions {
  /** What errors call the run, e.g. `etcdctl get /a`. */
  label: string;
  /** Bound of the whole run; past it the process is killed and the run fails. */
  timeoutMs: number;
  /** Environment; the parent's when omitted. */
  env?: NodeJS.ProcessEnv;
  /** Written to stdin, which is then closed; without it stdin is empty. */
  input?: string;
  /** Receives each stdout line as it arrives; stdout is then not collected (`stdout` is empty). */
  onLine?: (line: string) => void;
  /** Keep only the last this many characters of stderr (a chatty process); all of it by default. */
  stderrTailChars?: number;
  /** Called once the process is spawned, e.g. to register its cleanup. */
  onSpawn?: (child: ChildProcess) => void;
}

export interface RunResult {
  /** Exit code; null when a signal ended it. */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command args...` until it exits (any exit code resolves) or `timeoutMs` passes (rejects). */
export function runProcess(command: string, args: string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: opts.env ?? process.env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const [out, err] = [child.stdout!, child.stderr!];
    opts.onSpawn?.(child);
    let stdout = '';
    let stderr = '';
    err.on('data', (d: Buffer) => {
      stderr += d.toString('utf8');
      if (opts.stderrTailChars !== undefined) stderr = stderr.slice(-opts.stderrTailChars);
    });
    if (opts.onLine) createInterface({ input: out }).on('line', opts.onLine);
    else out.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${opts.label}: did not finish within ${opts.timeoutMs} ms, killed; stderr: ${stderr}`));
    }, opts.timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end(opts.input);
  });
}

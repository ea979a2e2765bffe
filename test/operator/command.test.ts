/**
 * The `harikube operator` and `harikube topologyconfig` commands as users run them (child processes): the
 * CRD printout, flag errors, a full run against the fake API server with probes, metrics, JSON logs and a
 * graceful SIGTERM that hands the Lease back, and the key/seal helpers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { FakeKube } from '../support/fake-kube.js';
import { ServerProcess } from '../support/child.js';
import { freePort } from '../support/env.js';
import { CLI_ARGS } from '../support/cli.js';
import { waitUntil } from '../support/wait.js';
import { topologyConfigCrd } from '../../middleware/src/topology/crd.js';
import { main as operatorMain } from '../../middleware/src/operator/command.js';
import { main as sealMain } from '../../middleware/src/operator/encrypt-command.js';
import { reportAsMiddleware, rule, statusOf, tcObject } from './harness.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = CLI_ARGS;

function harikube(args: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = execFile(process.execPath, [...CLI, ...args], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
    child.stdin!.end(stdin ?? '');
  });
}

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hk-operator-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function httpGet(url: string): Promise<{ status: number; text: string } | undefined> {
  try {
    const res = await fetch(url);
    return { status: res.status, text: await res.text() };
  } catch {
    return undefined;
  }
}

test('`harikube operator crd` prints the generated CRD as YAML', async () => {
  const { code, stdout } = await harikube(['operator', 'crd']);
  assert.equal(code, 0);
  assert.deepEqual(parseYaml(stdout), topologyConfigCrd());
});

/** Runs a command module's main() in this process, capturing what it writes to stderr. */
async function inProcess(main: (args: string[]) => Promise<number>, args: string[]): Promise<{ code: number; stderr: string }> {
  const write = process.stderr.write;
  let stderr = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await main(args), stderr };
  } finally {
    process.stderr.write = write;
  }
}

test('bad flags exit 2 and say what is wrong', async () => {
  const unknown = await inProcess(operatorMain, ['--leader-elekt']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown flag --leader-elekt; known flags: .*--leader-elect/);
  const badDuration = await inProcess(operatorMain, ['--lease-duration=soon']);
  assert.equal(badDuration.code, 2);
  assert.match(badDuration.stderr, /--lease-duration: "soon" is not a duration/);
  const badAddress = await inProcess(operatorMain, ['--health-probe-bind-address=localhost']);
  assert.equal(badAddress.code, 2);
  assert.match(badAddress.stderr, /bind address "localhost" is not \[host\]:port/);
  const badOrder = await inProcess(operatorMain, ['--lease-duration=5s', '--renew-deadline=10s']);
  assert.equal(badOrder.code, 2);
  assert.match(badOrder.stderr, /--renew-deadline must be shorter than --lease-duration/);
  const badBool = await inProcess(operatorMain, ['--leader-elect=maybe']);
  assert.match(badBool.stderr, /--leader-elect takes true or false, not "maybe"/);
  const short = await inProcess(sealMain, ['encrypt', '--key-file', '/nonexistent/key', '--endpoint', 'x']);
  assert.equal(short.code, 2);
  assert.match(short.stderr, /--key-file \/nonexistent\/key: no such file/);
});

test('the operator process serves probes and metrics, reconciles, logs JSON, and on SIGTERM releases its Lease', async (t) => {
  const fake = await FakeKube.start();
  const dir = await tempDir(t);
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, fake.kubeConfigYaml());
  const health = await freePort();
  const metrics = await freePort();
  const proc = new ServerProcess('operator', process.execPath, [
    ...CLI,
    'operator',
    `--kubeconfig=${kubeconfig}`,
    '--leader-elect',
    '--leader-election-namespace=harikube',
    '--lease-name=topology-operator',
    '--identity=cli-test',
    '--lease-duration=4s',
    '--renew-deadline=3s',
    '--retry-period=200ms',
    `--health-probe-bind-address=127.0.0.1:${health}`,
    `--metrics-bind-address=127.0.0.1:${metrics}`,
    '--log-format=json',
    '--api-lost-timeout=1s',
    '--secret-namespaces=harikube',
  ], { cwd: ROOT });
  t.after(async () => {
    await proc.stop();
    await fake.stop();
  });

  const ready = await waitUntil('/readyz says leader', async () => {
    if (!proc.running) throw proc.failure('exited early');
    const r = await httpGet(`http://127.0.0.1:${health}/readyz`);
    return r?.status === 200 && r.text.includes('leader') && !r.text.includes('standby') ? r : undefined;
  }, { timeoutMs: 30_000 });
  assert.match(ready.text, /ok \(leader\)/);
  assert.equal((await httpGet(`http://127.0.0.1:${health}/healthz`))?.status, 200);

  fake.create(tcObject('team-a', 'app', 1, [rule('pods')]));
  // written, but Active only once a middleware reports it applied the Secret
  await fake.until('Pending', () => statusOf(fake, 'team-a', 'app')?.conditions?.[0]?.reason === 'WaitingForMiddleware', 30_000);
  reportAsMiddleware(fake);
  await fake.until('Active', () => statusOf(fake, 'team-a', 'app')?.deployStatus === 'Active', 30_000);

  const scraped = await waitUntil('reconcile metrics', async () => {
    const r = await httpGet(`http://127.0.0.1:${metrics}/metrics`);
    return r && /harikube_operator_reconciles_total\{result="success"\} [1-9]/.test(r.text) && /harikube_operator_topologyconfigs\{status="Active"\} 1/.test(r.text) ? r.text : undefined;
  });
  assert.match(scraped, /harikube_operator_leader 1/);
  assert.match(scraped, /harikube_operator_queue_depth \d/);
  assert.match(scraped, /harikube_operator_topologyconfigs\{status="Active"\} 1/);
  assert.equal((await httpGet(`http://127.0.0.1:${health}/metrics`))?.status, 404, 'metrics only where asked');

  // Liveness fails once the API server has been unreachable for --api-lost-timeout, and recovers with it.
  await fake.restart({
    whileDown: async () => {
      const down = await waitUntil('/healthz fails while the API server is gone', async () => {
        const r = await httpGet(`http://127.0.0.1:${health}/healthz`);
        return r?.status === 503 ? r : undefined;
      }, { timeoutMs: 20_000 });
      assert.match(down.text, /unhealthy: .*no answer from the API server for \d+s/);
    },
  });
  let last = '';
  await waitUntil('/healthz ok again', async () => {
    const r = await httpGet(`http://127.0.0.1:${health}/healthz`);
    last = r?.text ?? '';
    return r?.status === 200 ? true : undefined;
  }, { timeoutMs: 60_000 }).catch((e) => assert.fail(`${e.message}: ${last}`));

  await proc.stop(10_000);
  assert.equal((await proc.exited).code, 0, proc.tail());
  const lease = fake.get('leases', 'harikube', 'topology-operator')!;
  assert.equal(lease.spec.holderIdentity, '', 'the Lease was handed back');
  const lines = proc.tail().trim().split('\n');
  for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `log line is JSON: ${line}`);
  assert.ok(lines.some((l) => JSON.parse(l).msg === 'stopped'));
});

test('topologyconfig keygen, encrypt and decrypt round-trip; a wrong key fails without printing the endpoint', async (t) => {
  const dir = await tempDir(t);
  const keygen = await harikube(['topologyconfig', 'keygen']);
  assert.equal(keygen.code, 0);
  assert.equal(Buffer.from(keygen.stdout.trim(), 'base64').length, 32);
  const keyFile = join(dir, 'key');
  await writeFile(keyFile, keygen.stdout);

  const endpoint = 'postgres://app:s3cret@db:5432/pods';
  const viaStdin = await harikube(['topologyconfig', 'encrypt', '--key-file', keyFile], `${endpoint}\n`);
  assert.equal(viaStdin.code, 0, viaStdin.stderr);
  const sealed = viaStdin.stdout.trim();
  assert.ok(!sealed.includes('s3cret'));
  const opened = await harikube(['topologyconfig', 'decrypt', '--key-file', keyFile, '--value', sealed]);
  assert.equal(opened.stdout, `${endpoint}\n`);

  const viaFlag = await harikube(['topologyconfig', 'encrypt', `--key-file=${keyFile}`, `--endpoint=${endpoint}`]);
  assert.equal((await harikube(['topologyconfig', 'decrypt', '--key-file', keyFile], viaFlag.stdout)).stdout, `${endpoint}\n`);

  const otherKey = join(dir, 'other');
  await writeFile(otherKey, Buffer.alloc(32, 9));
  const wrong = await harikube(['topologyconfig', 'decrypt', '--key-file', otherKey, '--value', sealed]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /cannot be decrypted/);
  assert.ok(!wrong.stderr.includes('s3cret') && wrong.stdout === '');

  const shortKey = join(dir, 'short');
  await writeFile(shortKey, 'too short');
  const bad = await harikube(['topologyconfig', 'encrypt', '--key-file', shortKey, '--endpoint', endpoint]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /must hold 32 raw bytes or base64 of 32 bytes/);
});

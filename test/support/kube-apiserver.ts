/**
 * A real kube-apiserver (built by `tools/build.sh kube-apiserver`) on a free loopback port, storing its data in
 * an etcd API endpoint: the middleware, or a real etcd for comparison.
 *
 * It is started the way a cluster operator starts it, with real flags only: a serving certificate from a CA
 * generated per server, service-account signing keys, a static admin token (`system:masters`), RBAC
 * authorization, the watch cache on (its default) and `--etcd-servers` at the endpoint. No feature gate is
 * changed. Only the `kubernetes` Service's endpoint reconciler is off (`--endpoint-reconciler-type=none`, as
 * Kubernetes' own test server does): an Endpoints object may not hold the loopback address it would write.
 *
 *   const api = await KubeApiServer.start({ etcd: middleware.address });
 *   const core = api.kubeConfig().makeApiClient(CoreV1Api);
 *   await api.kubectl(['apply', '-f', '-'], { input: yaml });   // the built kubectl, with api.kubeconfigPath
 *   await api.restart();                                         // same data dir, port and credentials
 *   await api.destroy();                                         // stop and remove the temp dir
 *
 * Tests that use it declare `skip: skipUnlessTool('kube-apiserver')`.
 */
import { execFile, execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { freePort } from './env.js';
import { ServerProcess } from './child.js';
import { kubeRequest, type KubeAccess, type KubeResponse } from './kube-request.js';
import { requireToolDir } from './tools.js';

/** kube-apiserver needs a few seconds to run its post-start hooks; 2 shared cores may be busy. */
const READY_TIMEOUT_MS = 120_000;

export interface KubeApiServerOptions {
  /** The etcd API to store in: `host:port` (plain http) or a full URL; several separated by commas. */
  etcd: string;
  /** More kube-apiserver flags, e.g. `['--etcd-compaction-interval=0']`. Appended last, so they win. */
  extraArgs?: string[];
  /** A label for error messages. */
  label?: string;
}

export interface KubectlResult {
  stdout: string;
  stderr: string;
}

/** Generates the CA, serving certificate (127.0.0.1, localhost) and service-account keys into `dir`. */
function writeCredentials(dir: string, token: string): void {
  const f = (name: string) => path.join(dir, name);
  const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2', '-subj', '/CN=harikube-test-ca']);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('serving.key'), '-out', f('serving.csr'), '-subj', '/CN=kube-apiserver']);
  writeFileSync(f('serving.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n');
  openssl(['x509', '-req', '-in', f('serving.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('serving.crt'), '-days', '2', '-extfile', f('serving.ext')]);
  const sa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(f('sa.key'), sa.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(f('sa.pub'), sa.publicKey.export({ type: 'spki', format: 'pem' }));
  // Static token file: token,user,uid,"group1,group2".
  writeFileSync(f('tokens.csv'), `${token},harikube-test-admin,harikube-test-admin,"system:masters"\n`);
}

export class KubeApiServer implements KubeAccess {
  private proc: ServerProcess | undefined;
  private ca: string | undefined;
  /** The static admin token (member of system:masters). */
  readonly token = randomBytes(24).toString('hex');

  private constructor(
    readonly options: KubeApiServerOptions,
    /** Temp dir with the credentials and the kubeconfig; removed by destroy(). */
    readonly dir: string,
    readonly port: number,
    readonly binDir: string,
  ) {
    writeCredentials(dir, this.token);
    writeFileSync(this.kubeconfigPath, this.kubeconfigYaml());
  }

  /** Starts kube-apiserver and waits (bounded) until /readyz answers 200. */
  static async start(options: KubeApiServerOptions): Promise<KubeApiServer> {
    const binDir = requireToolDir('kube-apiserver');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'hk-kube-'));
    const api = new KubeApiServer(options, dir, await freePort(), binDir);
    try {
      await api.launch();
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    return api;
  }

  /** https://127.0.0.1:PORT */
  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** A kubeconfig file for this server (admin token, CA data), usable by kubectl and client libraries. */
  get kubeconfigPath(): string {
    return path.join(this.dir, 'kubeconfig');
  }

  /** The PEM of the CA that signed the serving certificate. */
  get caPem(): string {
    // read once: request loops (the bench) would otherwise read the file per request
    return (this.ca ??= readFileSync(path.join(this.dir, 'ca.crt'), 'utf8'));
  }

  /** The built kubectl. */
  get kubectlBin(): string {
    return path.join(this.binDir, 'kubectl');
  }

  get process(): ServerProcess | undefined {
    return this.proc;
  }

  /** A fresh @kubernetes/client-node KubeConfig for this server. */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromFile(this.kubeconfigPath);
    return kc;
  }

  /** Runs the built kubectl against this server; rejects with its stderr when it exits non-zero. */
  kubectl(args: string[], { input, timeoutMs = 60_000 }: { input?: string; timeoutMs?: number } = {}): Promise<KubectlResult> {
    return new Promise((resolve, reject) => {
      const child = execFile(
        this.kubectlBin,
        ['--kubeconfig', this.kubeconfigPath, ...args],
        { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, KUBECONFIG: this.kubeconfigPath } },
        (err, stdout, stderr) => {
          if (err) reject(new Error(`kubectl ${args.join(' ')}: ${err.message}\n${stderr}`));
          else resolve({ stdout, stderr });
        },
      );
      if (input !== undefined) child.stdin?.end(input);
      else child.stdin?.end();
    });
  }

  /** One request with the admin token: status and parsed JSON body (or text when not JSON); see kube-request.ts. */
  request(method: string, urlPath: string, body?: unknown, contentType = 'application/json'): Promise<KubeResponse> {
    return kubeRequest(this, method, urlPath, { body, contentType });
  }

  /** Graceful stop (SIGTERM, then SIGKILL after the grace period). */
  async stop(): Promise<void> {
    await this.proc?.stop(15_000);
  }

  /** Crash without any chance to clean up. */
  async kill9(): Promise<void> {
    await this.proc?.kill9();
  }

  /** Starts again with the same port, credentials and etcd endpoint (after stop() or kill9()). */
  async restart(): Promise<void> {
    if (this.proc?.running) throw new Error('restart() of a running kube-apiserver: stop or kill it first');
    await this.launch();
  }

  /** Stops the server and removes its temp dir. */
  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private etcdServers(): string {
    return this.options.etcd
      .split(',')
      .map((e) => (e.includes('://') ? e : `http://${e}`))
      .join(',');
  }

  private args(): string[] {
    const f = (name: string) => path.join(this.dir, name);
    return [
      `--etcd-servers=${this.etcdServers()}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${this.port}`,
      `--cert-dir=${f('certs')}`,
      `--tls-cert-file=${f('serving.crt')}`,
      `--tls-private-key-file=${f('serving.key')}`,
      `--client-ca-file=${f('ca.crt')}`,
      `--token-auth-file=${f('tokens.csv')}`,
      '--authorization-mode=Node,RBAC',
      '--service-account-issuer=https://kubernetes.default.svc',
      `--service-account-key-file=${f('sa.pub')}`,
      `--service-account-signing-key-file=${f('sa.key')}`,
      '--service-cluster-ip-range=10.96.0.0/16',
      '--endpoint-reconciler-type=none',
      '--profiling=false',
      ...(this.options.extraArgs ?? []),
    ];
  }

  private kubeconfigYaml(): string {
    const ca = readFileSync(path.join(this.dir, 'ca.crt')).toString('base64');
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: harikube-test',
      '  cluster:',
      `    server: ${this.url}`,
      `    certificate-authority-data: ${ca}`,
      'users:',
      '- name: admin',
      '  user:',
      `    token: ${this.token}`,
      'contexts:',
      '- name: harikube-test',
      '  context: { cluster: harikube-test, user: admin, namespace: default }',
      'current-context: harikube-test',
      '',
    ].join('\n');
  }

  private async launch(): Promise<void> {
    const label = `kube-apiserver ${this.url}${this.options.label ? ` (${this.options.label})` : ''}`;
    const proc = new ServerProcess(label, path.join(this.binDir, 'kube-apiserver'), this.args());
    this.proc = proc;
    await proc.waitReady(`${this.url}/readyz to answer 200`, async () => (await this.request('GET', '/readyz')).status === 200, {
      timeoutMs: READY_TIMEOUT_MS,
      intervalMs: 250,
    });
  }
}

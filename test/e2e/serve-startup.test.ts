/**
 * `harikube serve` refuses to start on bad input, with a non-zero exit and a message naming the problem,
 * and serves clients over TLS with required client certificates when asked to.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ETCDCTL_BIN, freePort, skipUnless } from '../support/env.js';
import { Middleware, REPO_ROOT } from '../support/middleware.js';
import { CLI_ARGS } from '../support/cli.js';

const run = promisify(execFile);

async function serve(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stderr: string }> {
  try {
    await run(process.execPath, [...CLI_ARGS, 'serve', '--metrics-bind-address', '0', ...args], {
      cwd: REPO_ROOT,
      timeout: 30_000,
      env: { ...process.env, ...env },
    });
    return { code: 0, stderr: '' };
  } catch (err) {
    const e = err as { code?: number; stderr?: string };
    return { code: e.code ?? -1, stderr: e.stderr ?? '' };
  }
}

describe('serve refuses bad input', () => {
  it('an unknown flag exits 2 and names it', async () => {
    const r = await serve(['--listen-adress', '127.0.0.1:1']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /listen-adress/);
  });

  it('a bad value exits 2 and says what is expected', async () => {
    const r = await serve(['--emulated-etcd-version', '3.4.0']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /emulated-etcd-version "3\.4\.0": must be a version >= 3\.5\.13/);
    const d = await serve(['--compact-interval', 'soon']);
    assert.equal(d.code, 2);
    assert.match(d.stderr, /--compact-interval: "soon" is not a duration/);
  });

  it('an unreachable database exits 1 naming host and port, without the password', async () => {
    const port = await freePort();
    const r = await serve(['--listen-address', `127.0.0.1:${await freePort()}`, '--endpoint', `postgres://u:hunter2@127.0.0.1:${port}/x`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.doesNotMatch(r.stderr, /hunter2/);
  });

  it('an unknown endpoint scheme exits 1 and lists the ones it knows', async () => {
    const r = await serve(['--listen-address', `127.0.0.1:${await freePort()}`, '--endpoint', 'redis://127.0.0.1:6379']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unknown scheme "redis"/);
  });

  describe('on a first start (empty store, no topology saved) a topology file that cannot be applied stops the start: there is nothing to serve by', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'hk-topo-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));
    const serveWith = async (topology: string | undefined) => {
      const file = path.join(dir, `t-${Math.random().toString(36).slice(2)}.yaml`);
      if (topology !== undefined) writeFileSync(file, topology);
      return serve(['--listen-address', `127.0.0.1:${await freePort()}`, '--endpoint', `sqlite://${dir}/s.db`], { TOPOLOGY_CONFIG: `file://${file}` });
    };

    it('a missing file names the file', async () => {
      const r = await serveWith(undefined);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /topology source file:\/\/.*t-[a-z0-9]+\.yaml: the file does not exist.*first start \(no topology saved, an empty store\)/);
    });

    it('an invalid rule names the rule and the field', async () => {
      const r = await serveWith('backends:\n- name: pods\n  endpoint: sqlite://./x.db\n  prefix: { prefix: pods }\n  namespace: { namespace: a }\n');
      assert.equal(r.code, 1);
      assert.match(r.stderr, /backends\[0\] \(name "pods"\)/);
    });

    it('an unreachable backend names the rule, without the password', async () => {
      const port = await freePort();
      const r = await serveWith(`backends:\n- name: pods\n  endpoint: postgres://u:hunter2@127.0.0.1:${port}/x\n  prefix: { prefix: pods/ }\n`);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`rule "pods" \\(postgres://u:\\*\\*\\*@127\\.0\\.0\\.1:${port}/x\\)`));
      assert.doesNotMatch(r.stderr, /hunter2/);
    });
  });
});

function makeCertificates(dir: string): void {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=test-ca');
  writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const name of ['server', 'client']) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', 'san.ext');
  }
}

const etcdctlSkip = await skipUnless('etcdctl');

describe('client TLS with required client certificates', { skip: etcdctlSkip }, () => {
  let dir: string;
  let mw: Middleware;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'hk-tls-'));
    makeCertificates(dir);
    mw = await Middleware.start({
      endpoint: `sqlite://${dir}/state.db`,
      extraArgs: [
        '--server-cert-file', path.join(dir, 'server.crt'),
        '--server-key-file', path.join(dir, 'server.key'),
        '--server-ca-file', path.join(dir, 'ca.crt'),
      ],
    });
  });

  after(async () => {
    await mw?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const etcdctl = (args: string[]) =>
    run(ETCDCTL_BIN, ['--endpoints', mw.address, '--dial-timeout', '3s', '--command-timeout', '5s', ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
      timeout: 20_000,
    });

  it('serves a client that presents a certificate signed by the CA', async () => {
    const tls = ['--cacert', path.join(dir, 'ca.crt'), '--cert', path.join(dir, 'client.crt'), '--key', path.join(dir, 'client.key')];
    await etcdctl([...tls, 'put', 'tls-key', 'secure']);
    const { stdout } = await etcdctl([...tls, 'get', 'tls-key', '--print-value-only']);
    assert.equal(stdout.trim(), 'secure');
  });

  it('refuses a client without a certificate', async () => {
    await assert.rejects(etcdctl(['--cacert', path.join(dir, 'ca.crt'), 'get', 'tls-key']));
  });

  it('refuses a plaintext client', async () => {
    await assert.rejects(etcdctl(['get', 'tls-key']));
  });
});

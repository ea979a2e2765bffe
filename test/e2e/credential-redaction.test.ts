/**
 * No credential of an endpoint reaches the middleware's output: user-info passwords and credential query
 * parameters (`password=`, `sslpassword=`, `token=`) of every scheme, in start-up logs (debug included),
 * errors of a database that cannot be reached, refusals of bad endpoints, and /metrics. Checked on the
 * real process's output.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { b } from '../support/bytes.js';
import { freePort } from '../support/env.js';
import { EtcdClient } from '../support/grpc.js';
import { metricsPage } from '../support/metrics.js';
import { Middleware, REPO_ROOT } from '../support/middleware.js';
import { CLI_ARGS } from '../support/cli.js';

const run = promisify(execFile);
const SECRETS = ['hunter2-userinfo', 'hunter2-query', 'hunter2-ssl', 'hunter2-token'];

function assertNoSecret(text: string, where: string): void {
  for (const s of SECRETS) assert.ok(!text.includes(s), `${where} shows the credential "${s}":\n${text}`);
}

/** Runs `serve` until it exits (it must fail); its whole stdout and stderr. */
async function failingServe(endpoint: string): Promise<string> {
  try {
    await run(process.execPath, [...CLI_ARGS, 'serve', '--debug', '--metrics-bind-address', '0', '--listen-address', `127.0.0.1:${await freePort()}`, '--endpoint', endpoint], {
      cwd: REPO_ROOT,
      timeout: 60_000,
    });
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    assert.notEqual(e.code, 0);
    return `${e.stdout ?? ''}${e.stderr ?? ''}`;
  }
  throw new Error(`serve --endpoint ${endpoint} started; it should have failed`);
}

describe('credentials in endpoints are redacted everywhere the middleware writes', () => {
  it('a running SQLite middleware with credential parameters: logs (debug) and /metrics', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'hk-redact-'));
    const endpoint = `sqlite://${dir}/state.db?password=hunter2-query&sslpassword=hunter2-ssl&token=hunter2-token`;
    const mw = await Middleware.start({ endpoint, compactInterval: '0', extraArgs: ['--debug'] });
    try {
      const c = new EtcdClient(mw.address);
      await c.put({ key: b('/redact/k'), value: b('v') });
      c.close();
      const metrics = await metricsPage(mw);
      assertNoSecret(metrics, '/metrics');
      const output = mw.process!.tail();
      assert.match(output, /store opened/, 'the log was captured');
      assert.match(output, /password=\*\*\*/, 'the log names the parameter, redacted');
      assertNoSecret(output, 'the log');
    } finally {
      await mw.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('unreachable PostgreSQL and MySQL endpoints: the error and logs name host and port, not credentials', async () => {
    for (const scheme of ['postgres', 'mysql'] as const) {
      const port = await freePort();
      const host = scheme === 'mysql' ? `tcp(127.0.0.1:${port})` : `127.0.0.1:${port}`;
      const out = await failingServe(`${scheme}://u:hunter2-userinfo@${host}/db?password=hunter2-query&sslpassword=hunter2-ssl`);
      assert.match(out, new RegExp(`127\\.0\\.0\\.1:${port}`));
      assertNoSecret(out, `${scheme} start-up failure`);
    }
  });

  it('endpoints refused as malformed: the message does not quote their credentials', async () => {
    for (const endpoint of [
      'https://u:hunter2-userinfo@127.0.0.1:2379?token=hunter2-token',
      'postgres://u:hunter2-userinfo?@127.0.0.1/db?password=hunter2-query',
      'mysql://u:hunter2-userinfo@tcp(127.0.0.1:99999)/db?sslpassword=hunter2-ssl',
    ]) {
      assertNoSecret(await failingServe(endpoint), `refusal of ${endpoint.split(':')[0]}`);
    }
  });
});

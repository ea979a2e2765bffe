/**
 * http(s):// topology source against a real node:http server on 127.0.0.1: conditional requests (ETag,
 * Last-Modified), errors keep the last good topology, polling picks up changes, timeouts, and credentials never
 * showing in descriptions or errors.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { stringify } from 'yaml';
import type { Logger } from '../../middleware/src/log.js';
import { TopologyValidationError } from '../../middleware/src/topology/validate.js';
import {
  createTopologySource,
  redactUrl,
  TopologySourceError,
  type SourceDeps,
  type TopologyUpdate,
} from '../../middleware/src/topology/source/index.js';
import { waitUntil } from '../support/wait.js';
import { doc, names, rule } from './source-fixtures.js';


const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

interface Seen {
  url: string;
  headers: IncomingHttpHeaders;
  status: number;
}

/** A server whose answer the test sets; it records every request and the status it answered. */
async function serve(t: TestContext, handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    res.on('finish', () => seen.push({ url: req.url ?? '', headers: req.headers, status: res.statusCode }));
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  t.after(close);
  return { port, seen, close, base: `http://127.0.0.1:${port}` };
}

function recorder() {
  const updates: TopologyUpdate[] = [];
  const errors: Error[] = [];
  return { updates, errors, handlers: { onUpdate: async (u: TopologyUpdate) => void updates.push(u), onError: (e: Error) => void errors.push(e) } };
}

function source(t: TestContext, spec: string, deps: SourceDeps = {}) {
  const s = createTopologySource(spec, { logger: silent, pollIntervalMs: 30, ...deps });
  t.after(() => s.stop());
  return s;
}

test('polls with If-None-Match / If-Modified-Since; 304 delivers nothing; a change is picked up', async (t) => {
  let body = doc('pods');
  let etag = '"v1"';
  const lastModified = 'Wed, 01 Jan 2025 00:00:00 GMT';
  const srv = await serve(t, (req, res) => {
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/yaml', etag, 'last-modified': lastModified }).end(body);
  });
  const r = recorder();
  const s = source(t, `${srv.base}/topology.yaml`);
  await s.start(r.handlers);
  assert.equal(r.updates.length, 1);
  assert.deepEqual(names(r.updates[0]!), ['pods']);
  assert.equal(r.updates[0]!.origin, `${srv.base}/topology.yaml`);
  assert.equal(srv.seen[0]!.headers['if-none-match'], undefined, 'the first request is unconditional');

  await waitUntil('two polls answered 304', () => (srv.seen.filter((x) => x.status === 304).length >= 2 ? true : undefined));
  const conditional = srv.seen.find((x) => x.status === 304)!;
  assert.equal(conditional.headers['if-none-match'], '"v1"');
  assert.equal(conditional.headers['if-modified-since'], lastModified);
  assert.equal(r.updates.length, 1, 'unchanged polls deliver nothing');

  body = doc('pods', 'events');
  etag = '"v2"';
  await waitUntil('the changed document to be delivered', () => (r.updates.length === 2 ? true : undefined));
  assert.deepEqual(names(r.updates[1]!), ['pods', 'events']);

  await s.reload();
  assert.equal(r.updates.length, 3, 'reload() delivers even if unchanged');
  assert.equal(srv.seen.at(-1)!.headers['if-none-match'], undefined, 'reload() re-reads unconditionally');
  assert.deepEqual(r.errors, []);
});

test('an unchanged 200 (no validators) delivers nothing', async (t) => {
  const srv = await serve(t, (_req, res) => res.writeHead(200).end(doc('pods')));
  const r = recorder();
  const s = source(t, `${srv.base}/t.yaml`);
  await s.start(r.handlers);
  await waitUntil('three more polls', () => (srv.seen.length >= 4 ? true : undefined));
  assert.equal(r.updates.length, 1);
  assert.equal(srv.seen[3]!.headers['if-none-match'], undefined);
});

test('HTTP 500 is an error, the last good topology stays, recovery is picked up', async (t) => {
  let status = 500;
  let body = doc('pods');
  const srv = await serve(t, (_req, res) => {
    if (status !== 200) res.writeHead(status).end('boom');
    else res.writeHead(200).end(body);
  });
  const r = recorder();
  const s = source(t, `${srv.base}/t.yaml`);
  await s.start(r.handlers);
  assert.equal(r.updates.length, 0);
  assert.equal(r.errors.length, 1, 'reported before start() resolves');
  assert.ok(r.errors[0] instanceof TopologySourceError);
  assert.match(r.errors[0]!.message, new RegExp(`topology source ${srv.base}/t.yaml: HTTP 500 Internal Server Error`));

  status = 200;
  await waitUntil('the recovered document', () => (r.updates.length === 1 ? true : undefined));
  assert.deepEqual(names(r.updates[0]!), ['pods']);

  status = 503;
  await waitUntil('the next failure', () => (r.errors.length === 2 ? true : undefined));
  const after = srv.seen.length;
  await waitUntil('three more failing polls', () => (srv.seen.length >= after + 3 ? true : undefined));
  assert.equal(r.errors.length, 2, 'the same failure is reported once, not on every poll');
  assert.equal(r.updates.length, 1, 'a failure delivers nothing');

  body = doc('pods', 'leases');
  status = 200;
  await waitUntil('the next change', () => (r.updates.length === 2 ? true : undefined));
  assert.deepEqual(names(r.updates[1]!), ['pods', 'leases']);
});

test('an invalid document names the URL, the rule and the field', async (t) => {
  const srv = await serve(t, (_req, res) => res.writeHead(200).end(stringify({ backends: [{ ...rule('x'), prefix: { prefix: '/registry/x' } }] })));
  const r = recorder();
  await source(t, `${srv.base}/t.yaml`).start(r.handlers);
  assert.ok(r.errors[0] instanceof TopologyValidationError);
  assert.match(r.errors[0]!.message, new RegExp(`invalid topology from ${srv.base}/t.yaml`));
  assert.match(r.errors[0]!.message, /backends\[0\] \(name "x"\): field "prefix.prefix"/);
});

test('credentials in the URL are sent but never shown', async (t) => {
  let status = 200;
  const srv = await serve(t, (req, res) => {
    if (status === 200) res.writeHead(200).end(doc('pods'));
    else res.writeHead(status).end(`denied for ${req.url}`);
  });
  const spec = `http://alice:s3cr3t-pw@127.0.0.1:${srv.port}/topology.yaml?token=tok-123456&v=1`;
  const secrets = ['alice', 's3cr3t-pw', 'tok-123456'];
  const r = recorder();
  const s = source(t, spec);
  assert.equal(s.description, `http://***@127.0.0.1:${srv.port}/topology.yaml?token=***&v=***`);
  await s.start(r.handlers);
  assert.equal(r.updates.length, 1);
  for (const secret of secrets) assert.ok(!r.updates[0]!.origin.includes(secret), `origin shows ${secret}`);
  assert.equal(srv.seen[0]!.headers.authorization, `Basic ${Buffer.from('alice:s3cr3t-pw').toString('base64')}`);
  assert.equal(srv.seen[0]!.url, '/topology.yaml?token=tok-123456&v=1', 'the query is sent as given');

  status = 401;
  await waitUntil('the 401 to be reported', () => (r.errors.length === 1 ? true : undefined));
  await srv.close();
  await s.reload(); // connection refused now
  assert.equal(r.errors.length, 2);
  assert.match(r.errors[1]!.message, /request failed/);
  for (const e of r.errors) {
    assert.match(e.message, /http:\/\/\*\*\*@127\.0\.0\.1/);
    for (const secret of secrets) assert.ok(!e.message.includes(secret), `error shows ${secret}: ${e.message}`);
  }
});

test('a server that does not answer times out', async (t) => {
  const srv = await serve(t, () => {
    /* never answers */
  });
  const r = recorder();
  const s = source(t, `${srv.base}/t.yaml`, { requestTimeoutMs: 200, pollIntervalMs: 60_000 });
  await s.start(r.handlers);
  assert.equal(r.errors.length, 1);
  assert.match(r.errors[0]!.message, /no complete response within 200 ms/);
});

test('redactUrl hides userinfo and query values', () => {
  assert.equal(redactUrl('https://u:p@h:8443/a/b.yaml?x=1&token=abc#frag'), 'https://***@h:8443/a/b.yaml?x=***&token=***');
  assert.equal(redactUrl('https://tokenonly@h/t.yaml'), 'https://***@h/t.yaml');
  assert.equal(redactUrl('https://h/t.yaml?rawsecret'), 'https://h/t.yaml?***');
  assert.equal(redactUrl('https://h/t.yaml'), 'https://h/t.yaml');
  assert.equal(redactUrl('not a url://u:p@x?t=1'), 'not a url://***@x?t=***');
});

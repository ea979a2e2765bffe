/** openBackend: which endpoints make which backend, and what it refuses. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BackendUnavailableError, openBackend } from '../../middleware/src/backends/index.js';
import { freePort } from '../support/env.js';

test('etcd and middleware endpoints make an http backend (an etcd or a child middleware, told apart at open); an unreachable one fails to open as unavailable, naming it', async () => {
  for (const endpoint of ['http://127.0.0.1:2379', 'https://a:2379,b:2379']) assert.equal(openBackend(endpoint).description, endpoint);
  const endpoint = `http://127.0.0.1:${await freePort()}`;
  const be = openBackend(endpoint, { queryTimeoutMs: 2000 });
  await assert.rejects(be.open(), (err) => err instanceof BackendUnavailableError && err.message.includes(endpoint) && /check that the etcd or middleware is running/.test(err.message));
  await be.close();
});

test('SQL endpoints make backends whose description hides the password', () => {
  const pg = openBackend('postgres://user:topsecret@db.example:5432/kube');
  assert.equal(pg.description, 'postgres://user:***@db.example:5432/kube');
  const my = openBackend('mysql://root:topsecret@tcp(db.example:3306)/kube');
  assert.ok(!my.description.includes('topsecret'));
  assert.equal(openBackend('sqlite://./db/state.db').description, 'sqlite://./db/state.db');
});

test('malformed endpoints fail with the endpoint error', () => {
  assert.throws(() => openBackend('postgres://db.example:5432'), /no database name/);
  assert.throws(() => openBackend('redis://x'), /unknown scheme/);
});

test('a bad sslmode is refused when the backend is made', () => {
  assert.throws(() => openBackend('postgres://u@h:5432/d?sslmode=sometimes'), /sslmode "sometimes"/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EndpointError, parseEndpoint, redactEndpoint } from '../../middleware/src/topology/endpoint.js';

test('every documented endpoint form parses', () => {
  assert.deepEqual(parseEndpoint('sqlite://./db/shirts.db?_journal=WAL&cache=shared'), {
    kind: 'sqlite',
    path: './db/shirts.db',
    params: { _journal: 'WAL', cache: 'shared' },
  });
  assert.equal((parseEndpoint('sqlite:///var/lib/h.db') as { path: string }).path, '/var/lib/h.db');
  assert.deepEqual(parseEndpoint('mysql://root:passwd@tcp(172.17.0.1:3306)/pods'), {
    kind: 'mysql', user: 'root', password: 'passwd', host: '172.17.0.1', port: 3306, database: 'pods', params: {},
  });
  assert.deepEqual(parseEndpoint('postgresql://postgres:p%40ss@db:5433/configmaps?sslmode=require'), {
    kind: 'postgres', user: 'postgres', password: 'p@ss', host: 'db', port: 5433, database: 'configmaps', params: { sslmode: 'require' },
  });
  assert.deepEqual(parseEndpoint('https://etcd-a:2379,etcd-b:2379'), { kind: 'etcd', hosts: ['etcd-a:2379', 'etcd-b:2379'], tls: true });
});

test('bad endpoints say what is wrong without showing the password', () => {
  assert.throws(() => parseEndpoint('redis://x'), (e: unknown) => e instanceof EndpointError && /unknown scheme "redis"/.test((e as Error).message));
  assert.throws(() => parseEndpoint('postgres://u:secret@db:5432'), /no database name/);
  assert.throws(() => parseEndpoint('postgres://u:secret@db:99999/x'), (e: unknown) => !(e as Error).message.includes('secret'));
  assert.throws(() => parseEndpoint('db.example.com:5432'), /has no scheme/);
});

test('redaction hides the whole password, also one holding "@" or "/"', () => {
  assert.equal(redactEndpoint('postgres://u:p@ss@db/x'), 'postgres://u:***@db/x');
  assert.equal(redactEndpoint('mysql://root:pw@tcp(h:3306)/db?x=1'), 'mysql://root:***@tcp(h:3306)/db?x=1');
  assert.equal(redactEndpoint('postgres://u:p/w@h:5432/d'), 'postgres://u:***@h:5432/d');
  assert.equal(redactEndpoint('postgres://u@h/db'), 'postgres://u@h/db');
  assert.equal(redactEndpoint('sqlite://./a.db'), 'sqlite://./a.db');
});

test('redaction hides credential query parameters and passwords with "?" or ",", in every scheme', () => {
  assert.equal(redactEndpoint('sqlite:///x/a.db?password=hunter2&mode=rwc'), 'sqlite:///x/a.db?password=***&mode=rwc');
  assert.equal(
    redactEndpoint('postgres://h/db?password=qp&sslpassword=s2&sslmode=require&user=me'),
    'postgres://h/db?password=***&sslpassword=***&sslmode=require&user=me',
  );
  assert.equal(redactEndpoint('mysql://u:x%40y@tcp(h)/d?Password=Z&pwd=1&tls=true'), 'mysql://u:***@tcp(h)/d?Password=***&pwd=***&tls=true');
  assert.equal(redactEndpoint('postgres://u:pa?ss@h/db'), 'postgres://u:***@h/db');
  assert.equal(redactEndpoint('https://u:p1@h1:2379,u:p2@h2:2379'), 'https://u:***@h2:2379');
  assert.equal(redactEndpoint('http://h:2379?token=abc'), 'http://h:2379?token=***');
  assert.equal(redactEndpoint('postgres://h/db?owner=a@b'), 'postgres://h/db?owner=a@b');
  // errors quoting a part of the endpoint do not quote its credentials either
  assert.throws(() => parseEndpoint('https://u:secretpw@h1:2379'), (e: unknown) => e instanceof EndpointError && !(e as Error).message.includes('secretpw'));
  assert.throws(() => parseEndpoint('postgres://u:pa?ss@h/db'), (e: unknown) => e instanceof EndpointError && !/pa\?ss|ss@h/.test((e as Error).message));
});

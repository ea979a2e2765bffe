/** Which driver errors mean "unavailable, may pass" and which connection failures are worth one retry. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BackendUnavailableError } from '../../middleware/src/backends/backend.js';
import { classify } from '../../middleware/src/backends/sql/errors.js';
import { mysqlConnectionLost, mysqlTransient } from '../../middleware/src/backends/sql/mysql-errors.js';
import { postgresConnectionLost, postgresTransient } from '../../middleware/src/backends/sql/postgres-errors.js';

const err = (message: string, extra: Record<string, unknown> = {}) => Object.assign(new Error(message), extra);

test('PostgreSQL: shutdowns, lost connections and timeouts are unavailable; constraint and syntax errors are not', () => {
  assert.ok(postgresTransient(err('terminating connection due to administrator command', { code: '57P01' })));
  assert.ok(postgresTransient(err('the database system is starting up', { code: '57P03' })));
  assert.ok(postgresTransient(err('could not extend file: No space left on device', { code: '53100' })));
  assert.ok(postgresTransient(err('Connection terminated unexpectedly')));
  assert.ok(postgresTransient(err('timeout exceeded when trying to connect')));
  assert.ok(postgresTransient(err('connect ECONNREFUSED 127.0.0.1:5432', { code: 'ECONNREFUSED' })));
  assert.ok(!postgresTransient(err('duplicate key value violates unique constraint', { code: '23505' })));
  assert.ok(!postgresTransient(err('syntax error', { code: '42601' })));
  assert.ok(!postgresTransient(err('password authentication failed', { code: '28P01' })));
  assert.ok(postgresConnectionLost(err('terminating connection due to administrator command', { code: '57P01' })));
  assert.ok(!postgresConnectionLost(err('connect ECONNREFUSED', { code: 'ECONNREFUSED' })), 'a refused connect is not retried at once');
});

test('MySQL: killed and lost connections, shutdowns, deadlocks are unavailable; access denied and duplicates are not', () => {
  assert.ok(mysqlTransient(err('Connection lost: The server closed the connection.', { code: 'PROTOCOL_CONNECTION_LOST', fatal: true })));
  assert.ok(mysqlTransient(err('Connection was killed', { errno: 1927 })));
  assert.ok(mysqlTransient(err('Server shutdown in progress', { code: 'ER_SERVER_SHUTDOWN' })));
  assert.ok(mysqlTransient(err('Deadlock found', { code: 'ER_LOCK_DEADLOCK' })));
  assert.ok(mysqlTransient(err("Can't add new command when connection is in closed state")));
  assert.ok(!mysqlTransient(err('Duplicate entry', { code: 'ER_DUP_ENTRY' })));
  assert.ok(!mysqlTransient(err('Access denied', { code: 'ER_ACCESS_DENIED_ERROR', fatal: true })));
  assert.ok(mysqlConnectionLost(err('Connection lost', { code: 'PROTOCOL_CONNECTION_LOST', fatal: true })));
  assert.ok(!mysqlConnectionLost(err('Server shutdown in progress', { code: 'ER_SERVER_SHUTDOWN' })));
});

test('classify wraps only transient errors, keeping the cause and adding context and a hint', () => {
  const lost = err('Connection terminated unexpectedly');
  const wrapped = classify(lost, postgresTransient, 'postgres://u:***@h:5432/db: range failed', 'check the server');
  assert.ok(wrapped instanceof BackendUnavailableError);
  assert.equal(wrapped.message, 'postgres://u:***@h:5432/db: range failed: Connection terminated unexpectedly; check the server');
  assert.equal(wrapped.cause, lost);
  const dup = err('duplicate key', { code: '23505' });
  assert.equal(classify(dup, postgresTransient, 'x', 'y'), dup);
});

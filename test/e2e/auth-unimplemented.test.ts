/**
 * etcd's Auth service (users, roles, authentication) is not implemented (README, "Compatibility with
 * etcd"): etcdctl's user, role and auth commands fail with gRPC Unimplemented, clearly, and change nothing;
 * the server keeps serving.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { contractSuite } from '../support/contract.js';
import { etcdctl, etcdctlOk } from '../support/etcdctl.js';

await contractSuite(
  'auth RPCs',
  (t) => {
    it('etcdctl user/role/auth commands answer Unimplemented; reads and writes still work', async () => {
      for (const args of [['user', 'list'], ['role', 'list'], ['user', 'add', 'alice:pw'], ['auth', 'enable']]) {
        const res = await etcdctl(t.address, args);
        assert.notEqual(res.code, 0, `etcdctl ${args.join(' ')} fails`);
        assert.match(res.stderr, /Unimplemented|unknown service etcdserverpb\.Auth/i, `etcdctl ${args.join(' ')}: ${res.stderr}`);
      }
      await etcdctlOk(t.address, ['put', '/auth-check', 'v']);
      assert.match(await etcdctlOk(t.address, ['get', '/auth-check', '--print-value-only']), /^v\n/);
    });
  },
  { targets: ['middleware-sqlite'], services: ['etcdctl'] },
);

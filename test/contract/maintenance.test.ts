/** Status, Alarm, MemberList and gRPC health: what kube-apiserver and etcdctl ask about the server. */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { b, rev } from '../support/bytes.js';
import { contractSuite } from '../support/contract.js';

/** kube-apiserver enables watch progress requests only for etcd >= 3.5.13. */
const MIN_VERSION = [3, 5, 13];

function atLeast(version: string, min: number[]): boolean {
  const parts = version.split(/[.-]/).slice(0, 3).map(Number);
  for (let i = 0; i < min.length; i++) {
    if ((parts[i] ?? 0) !== min[i]) return (parts[i] ?? 0) > min[i]!;
  }
  return true;
}

await contractSuite('maintenance', (t) => {
  it(
    'status reports a version >= 3.5.13',
    { skip: t.deviation('it reports its own version, 3.4.23 (seen: version "3.4.23")') },
    async () => {
      const status = await t.client.status();
      assert.match(status.version, /^\d+\.\d+\.\d+/);
      assert.ok(atLeast(status.version, MIN_VERSION), `version ${status.version} < ${MIN_VERSION.join('.')}`);
    },
  );

  it('status reports a nonzero member_id that is the leader, dbSize > 0 and the current revision', async () => {
    const r1 = rev(await t.client.put({ key: b(`${t.prefix('status')}k`), value: b('v') }));
    const status = await t.client.status();
    assert.notEqual(status.header.member_id, '0');
    assert.equal(status.leader, status.header.member_id);
    assert.ok(BigInt(status.dbSize) > 0n, `dbSize ${status.dbSize}`);
    assert.equal(rev(status), r1);
    assert.deepEqual(status.errors, []);
    assert.equal(status.isLearner, false);
  });

  it('alarm list is empty', async () => {
    const alarms = await t.client.alarmList();
    assert.deepEqual(alarms.alarms, []);
  });

  it('member list has one member, with the URL clients reach it on', async () => {
    const { members } = await t.client.memberList();
    assert.equal(members.length, 1);
    const [member] = members;
    assert.notEqual(member!.ID, '0');
    assert.ok(
      member!.clientURLs.some((u) => u.replace(/^https?:\/\//, '').replace(/\/$/, '') === t.address),
      `clientURLs ${JSON.stringify(member!.clientURLs)} should include ${t.address}`,
    );
    assert.equal(member!.ID, (await t.client.status()).header.member_id);
  });

  it('gRPC health says SERVING', async () => {
    assert.deepEqual(await t.client.healthCheck(), { status: 'SERVING' });
  });
});

/**
 * A stock kube-apiserver (watch cache on, RBAC on) storing in the middleware over SQLite, PostgreSQL, MariaDB
 * and a routed topology (a namespace on PostgreSQL, a custom-resource group on MariaDB, the rest on SQLite),
 * driven by @kubernetes/client-node and the built kubectl: objects of the common kinds, paging with continue,
 * RV=0, consistent and exact lists, watches from a resourceVersion (also across a middleware restart),
 * stale updates and delete preconditions (409), server-side apply, Events on TTL leases, `kubectl get -w`,
 * an expired continue token (410), and where every key physically landed.
 *
 * One API server per target; the cases of a target run in order on it (the 410 case compacts, so it is last).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import {
  ApiextensionsV1Api,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type V1ConfigMap,
} from '@kubernetes/client-node';
import { b } from '../support/bytes.js';
import { EtcdClient } from '../support/grpc.js';
import { KubeStack, selectedKubeTargets, ROUTED_GROUP, ROUTED_NAMESPACE, kubeTargetSkip, type KubeTarget } from '../support/kube-stack.js';
import { KubeWatch } from '../support/kube-watch.js';
import { waitUntil } from '../support/wait.js';
import { compactLikeKubeApiServer, expectApiError, kubectlWait, widgetCrdYaml } from './kube-helpers.js';

/** Events live this long (a real kube-apiserver flag; the default is 1h). */
const EVENT_TTL_SECONDS = 8;

for (const target of selectedKubeTargets()) {
  describe(`kube-apiserver on the middleware (${target})`, { skip: await kubeTargetSkip(target) }, () => {
    let stack: KubeStack;
    let kc: KubeConfig;
    let core: CoreV1Api;
    let apps: AppsV1Api;
    let custom: CustomObjectsApi;
    let etcd: EtcdClient;
    /** Namespaced objects go here; on the routed target this namespace is stored on PostgreSQL. */
    const ns = ROUTED_NAMESPACE;
    /** A second namespace, on the default backend of the routed target. */
    const other = 'apps';
    const watches: KubeWatch[] = [];

    const cm = (name: string, data: Record<string, string> = { k: name }): V1ConfigMap => ({ metadata: { name }, data });

    before(async () => {
      stack = await KubeStack.start(target, { apiServerArgs: [`--event-ttl=${EVENT_TTL_SECONDS}s`] });
      kc = stack.api.kubeConfig();
      core = kc.makeApiClient(CoreV1Api);
      apps = kc.makeApiClient(AppsV1Api);
      custom = kc.makeApiClient(CustomObjectsApi);
      etcd = new EtcdClient(stack.middleware.address);
    });

    after(async () => {
      for (const w of watches) w.close();
      etcd?.close();
      await stack?.stop();
    });

    it('stores namespaces, ConfigMaps, Secrets, Deployments, Services, a CRD and its custom resources', async () => {
      for (const name of [ns, other, 'paging']) await core.createNamespace({ body: { metadata: { name } } });
      for (const namespace of [ns, other]) {
        await core.createNamespacedConfigMap({ namespace, body: cm('settings', { color: 'blue' }) });
        await core.createNamespacedSecret({ namespace, body: { metadata: { name: 'creds' }, type: 'Opaque', stringData: { password: 's3cret' } } });
        await apps.createNamespacedDeployment({
          namespace,
          body: {
            metadata: { name: 'web' },
            spec: {
              replicas: 2,
              selector: { matchLabels: { app: 'web' } },
              template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'nginx:1.27' }] } },
            },
          },
        });
        await core.createNamespacedService({
          namespace,
          body: { metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] } },
        });
      }
      await stack.api.kubectl(['apply', '-f', '-'], { input: widgetCrdYaml() });
      await kubectlWait(stack.api, 'Established', [`crd/widgets.${ROUTED_GROUP}`]);
      for (const namespace of [ns, other]) {
        await waitUntil('the Widget API to serve', async () =>
          custom
            .createNamespacedCustomObject({
              group: ROUTED_GROUP,
              version: 'v1',
              namespace,
              plural: 'widgets',
              body: { apiVersion: `${ROUTED_GROUP}/v1`, kind: 'Widget', metadata: { name: 'w1' }, spec: { size: 3 } },
            })
            .then(() => true),
        { timeoutMs: 30_000, intervalMs: 250 });
      }

      // Read everything back through the API server.
      for (const namespace of [ns, other]) {
        assert.deepEqual((await core.readNamespacedConfigMap({ name: 'settings', namespace })).data, { color: 'blue' });
        const secret = await core.readNamespacedSecret({ name: 'creds', namespace });
        assert.equal(Buffer.from(secret.data!.password!, 'base64').toString(), 's3cret');
        assert.equal((await apps.readNamespacedDeployment({ name: 'web', namespace })).spec?.replicas, 2);
        const svc = await core.readNamespacedService({ name: 'web', namespace });
        assert.match(svc.spec?.clusterIP ?? '', /^10\.96\.\d+\.\d+$/, 'a cluster IP allocated from --service-cluster-ip-range');
        const w = (await custom.getNamespacedCustomObject({ group: ROUTED_GROUP, version: 'v1', namespace, plural: 'widgets', name: 'w1' })) as any;
        assert.equal(w.spec.size, 3);
      }
      const { stdout } = await stack.api.kubectl(['get', 'configmaps,secrets,deployments,services,widgets', '-n', ns, '-o', 'name']);
      for (const name of ['configmap/settings', 'secret/creds', 'deployment.apps/web', 'service/web', `widget.${ROUTED_GROUP}/w1`]) {
        assert.ok(stdout.split('\n').includes(name), `kubectl get lists ${name}; got:\n${stdout}`);
      }
    });

    it('pages a list with limit and continue, all pages at the first page\'s snapshot', async () => {
      const names = Array.from({ length: 25 }, (_, i) => `item-${String(i).padStart(2, '0')}`);
      for (const name of names) await core.createNamespacedConfigMap({ namespace: 'paging', body: cm(name) });
      const first = await core.listNamespacedConfigMap({ namespace: 'paging', limit: 10 });
      assert.equal(first.items.length, 10);
      assert.ok(first.metadata?._continue, 'a continue token on a partial page');
      assert.equal(first.metadata?.remainingItemCount, 15);
      // Created after the first page: not part of the paged snapshot.
      await core.createNamespacedConfigMap({ namespace: 'paging', body: cm('item-99-late') });
      const seen = first.items.map((i) => i.metadata!.name!);
      let token: string | undefined = first.metadata!._continue;
      let pages = 1;
      while (token) {
        const page = await core.listNamespacedConfigMap({ namespace: 'paging', limit: 10, _continue: token });
        assert.equal(page.metadata?.resourceVersion, first.metadata?.resourceVersion, 'every page at the same resourceVersion');
        seen.push(...page.items.map((i) => i.metadata!.name!));
        token = page.metadata?._continue;
        pages++;
      }
      assert.equal(pages, 3);
      assert.deepEqual(seen, names, 'every object once, in key order, nothing created after the first page');
      const all = await core.listNamespacedConfigMap({ namespace: 'paging' });
      assert.equal(all.items.length, 26);
    });

    it('lists at resourceVersion=0, consistently (read your writes) and exactly at an older resourceVersion', async () => {
      const before = await core.listNamespacedConfigMap({ namespace: 'paging' });
      const rvBefore = before.metadata!.resourceVersion!;
      const created = await core.createNamespacedConfigMap({ namespace: 'paging', body: cm('after-list') });
      // A consistent list (no resourceVersion) includes a write acknowledged just before it.
      const consistent = await core.listNamespacedConfigMap({ namespace: 'paging' });
      assert.ok(consistent.items.some((i) => i.metadata?.name === 'after-list'), 'a consistent list sees the preceding write');
      assert.ok(BigInt(consistent.metadata!.resourceVersion!) >= BigInt(created.metadata!.resourceVersion!));
      // resourceVersion=0: any state the server has; the watch cache catches up with the write.
      await waitUntil('an RV=0 list to include the new object', async () => {
        const l = await core.listNamespacedConfigMap({ namespace: 'paging', resourceVersion: '0' });
        assert.ok(l.metadata?.resourceVersion);
        return l.items.some((i) => i.metadata?.name === 'after-list') ? true : undefined;
      });
      // Exactly at the older resourceVersion: the state then, without the later write.
      const exact = await core.listNamespacedConfigMap({ namespace: 'paging', resourceVersion: rvBefore, resourceVersionMatch: 'Exact' });
      assert.equal(exact.metadata?.resourceVersion, rvBefore);
      assert.deepEqual(
        exact.items.map((i) => i.metadata!.name),
        before.items.map((i) => i.metadata!.name),
      );
      // A single object read with resourceVersion=0 and without.
      const got = await core.readNamespacedConfigMap({ name: 'after-list', namespace: 'paging' });
      assert.equal(got.metadata?.resourceVersion, created.metadata?.resourceVersion);
    });

    it('watches from a resourceVersion: exactly the later changes, in order', async () => {
      const created = await core.createNamespacedConfigMap({ namespace: ns, body: cm('watched', { v: '1' }) });
      const rv = created.metadata!.resourceVersion!;
      const updated = await core.replaceNamespacedConfigMap({ name: 'watched', namespace: ns, body: { ...created, data: { v: '2' } } });
      await core.deleteNamespacedConfigMap({ name: 'watched', namespace: ns });
      const w = await KubeWatch.open(kc, `/api/v1/namespaces/${ns}/configmaps`, { resourceVersion: rv });
      watches.push(w);
      await w.waitFor('DELETED', 'watched');
      const mine = w.events.filter((e) => e.name === 'watched');
      assert.deepEqual(mine.map((e) => e.type), ['MODIFIED', 'DELETED'], 'the change at the watch RV itself is not replayed');
      assert.equal(mine[0]!.resourceVersion, updated.metadata!.resourceVersion);
      assert.equal(mine[0]!.object.data.v, '2');
      assert.ok(BigInt(mine[1]!.resourceVersion) > BigInt(mine[0]!.resourceVersion));
      w.close();
    });

    it('refuses an update with a stale resourceVersion (409) and keeps the newer value', async () => {
      const v1 = await core.createNamespacedConfigMap({ namespace: ns, body: cm('cas', { v: '1' }) });
      await core.replaceNamespacedConfigMap({ name: 'cas', namespace: ns, body: { ...v1, data: { v: '2' } } });
      await expectApiError(core.replaceNamespacedConfigMap({ name: 'cas', namespace: ns, body: { ...v1, data: { v: 'stale' } } }), 409, 'Conflict');
      assert.deepEqual((await core.readNamespacedConfigMap({ name: 'cas', namespace: ns })).data, { v: '2' });
      // The same through kubectl: a replace carrying the stale resourceVersion fails.
      const stale = JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cas', namespace: ns, resourceVersion: v1.metadata!.resourceVersion }, data: { v: 'x' } });
      await assert.rejects(stack.api.kubectl(['replace', '-f', '-'], { input: stale }), /modified|conflict/i);
    });

    it('deletes with preconditions: a stale resourceVersion or another uid is refused (409)', async () => {
      const v1 = await core.createNamespacedConfigMap({ namespace: ns, body: cm('precond', { v: '1' }) });
      const v2 = await core.replaceNamespacedConfigMap({ name: 'precond', namespace: ns, body: { ...v1, data: { v: '2' } } });
      await expectApiError(
        core.deleteNamespacedConfigMap({ name: 'precond', namespace: ns, body: { preconditions: { resourceVersion: v1.metadata!.resourceVersion } } }),
        409,
        'Conflict',
      );
      await expectApiError(
        core.deleteNamespacedConfigMap({ name: 'precond', namespace: ns, body: { preconditions: { uid: '00000000-0000-0000-0000-000000000000' } } }),
        409,
        'Conflict',
      );
      assert.equal((await core.readNamespacedConfigMap({ name: 'precond', namespace: ns })).data?.v, '2');
      await core.deleteNamespacedConfigMap({
        name: 'precond',
        namespace: ns,
        body: { preconditions: { resourceVersion: v2.metadata!.resourceVersion, uid: v2.metadata!.uid } },
      });
      await expectApiError(core.readNamespacedConfigMap({ name: 'precond', namespace: ns }), 404, 'NotFound');
    });

    it('server-side apply: field ownership, conflicts between managers, forced takeover', async () => {
      const manifest = (v: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: ${ns}\ndata:\n  owner: "${v}"\n`;
      await stack.api.kubectl(['apply', '--server-side', '--field-manager=team-a', '-f', '-'], { input: manifest('a') });
      await assert.rejects(
        stack.api.kubectl(['apply', '--server-side', '--field-manager=team-b', '-f', '-'], { input: manifest('b') }),
        /conflict/i,
        'another manager changing an owned field conflicts',
      );
      assert.equal((await core.readNamespacedConfigMap({ name: 'applied', namespace: ns })).data?.owner, 'a');
      await stack.api.kubectl(['apply', '--server-side', '--field-manager=team-b', '--force-conflicts', '-f', '-'], { input: manifest('b') });
      const got = await core.readNamespacedConfigMap({ name: 'applied', namespace: ns });
      assert.equal(got.data?.owner, 'b');
      const managers = (got.metadata?.managedFields ?? []).map((f) => f.manager);
      assert.ok(managers.includes('team-b'), `team-b owns the field now (managers: ${managers.join(', ')})`);
    });

    it(`stores Events on a lease and drops them after --event-ttl=${EVENT_TTL_SECONDS}s`, async () => {
      const now = new Date();
      await core.createNamespacedEvent({
        namespace: ns,
        body: {
          metadata: { name: 'web.ttl' },
          involvedObject: { kind: 'Deployment', namespace: ns, name: 'web', apiVersion: 'apps/v1' },
          reason: 'Tested',
          message: 'an event with a TTL',
          type: 'Normal',
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
          source: { component: 'harikube-test' },
        },
      });
      const key = `/registry/events/${ns}/web.ttl`;
      const res = await etcd.range({ key: b(key) });
      assert.equal(res.kvs.length, 1, `the event is stored at ${key}`);
      const lease = res.kvs[0]!.lease;
      assert.notEqual(lease, '0', 'the event key is attached to a lease');
      const ttl = await etcd.leaseTimeToLive(lease, true);
      assert.ok(Number(ttl.grantedTTL) >= EVENT_TTL_SECONDS, `lease granted for at least the event TTL (got ${ttl.grantedTTL})`);
      assert.ok(ttl.keys.some((k) => k.toString() === key), 'the lease lists the event key');
      // The lease expires in the middleware, which deletes the key; the API server's watch cache follows.
      await waitUntil('the event to expire', async () => ((await etcd.range({ key: b(key) })).kvs.length === 0 ? true : undefined), {
        timeoutMs: (EVENT_TTL_SECONDS + 30) * 1000,
        intervalMs: 500,
      });
      await waitUntil('the API server to forget the event', async () => {
        const l = await core.listNamespacedEvent({ namespace: ns });
        return l.items.some((e) => e.metadata?.name === 'web.ttl') ? undefined : true;
      });
    });

    it('kubectl get -w prints objects as they are created and changed', async () => {
      const child = spawn(stack.api.kubectlBin, ['--kubeconfig', stack.api.kubeconfigPath, 'get', 'configmaps', '-n', other, '-w', '-o', 'name'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      try {
        await waitUntil('kubectl get -w to list the existing objects', () => (out.includes('configmap/settings') ? true : undefined), { timeoutMs: 30_000 });
        await core.createNamespacedConfigMap({ namespace: other, body: cm('watched-by-kubectl') });
        await waitUntil(`kubectl get -w to print the new object (stdout: ${out}; stderr: ${err})`, () =>
          out.includes('configmap/watched-by-kubectl') ? true : undefined, { timeoutMs: 30_000 });
        const before = out.split('configmap/watched-by-kubectl').length;
        await core.patchNamespacedConfigMap({ name: 'watched-by-kubectl', namespace: other, body: [{ op: 'add', path: '/data/x', value: 'y' }] });
        await waitUntil('kubectl get -w to print the change', () => (out.split('configmap/watched-by-kubectl').length > before ? true : undefined), {
          timeoutMs: 30_000,
        });
      } finally {
        child.kill('SIGTERM');
      }
    });

    it('every key is stored in the database its rule names', async () => {
      const keys = await stack.keysByBackend();
      const expectedIn = (all: string[], key: string) => assert.ok(all.includes(key), `${key} stored (have ${all.length} keys)`);
      const nsKeys = [`/registry/configmaps/${ns}/settings`, `/registry/secrets/${ns}/creds`, `/registry/deployments/${ns}/web`, `/registry/services/specs/${ns}/web`];
      const otherKeys = [`/registry/configmaps/${other}/settings`, `/registry/secrets/${other}/creds`, `/registry/deployments/${other}/web`, `/registry/services/specs/${other}/web`];
      const widgetKeys = [`/registry/${ROUTED_GROUP}/widgets/${ns}/w1`, `/registry/${ROUTED_GROUP}/widgets/${other}/w1`];
      const clusterKeys = [`/registry/namespaces/${ns}`, `/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.${ROUTED_GROUP}`];
      if (target !== 'routed') {
        for (const k of [...nsKeys, ...otherKeys, ...widgetKeys, ...clusterKeys]) expectedIn(keys.default, k);
        return;
      }
      for (const k of nsKeys) expectedIn(keys.postgres!, k);
      for (const k of widgetKeys) expectedIn(keys.mariadb!, k);
      for (const k of [...otherKeys, ...clusterKeys]) expectedIn(keys.default, k);
      const nsPattern = new RegExp(`^/registry/[^/]+(/specs|/endpoints)?/${ns}/`);
      const widgetPrefix = `/registry/${ROUTED_GROUP}/`;
      assert.deepEqual(keys.postgres!.filter((k) => !nsPattern.test(k) || k.startsWith(widgetPrefix)), [], 'PostgreSQL holds only the namespace\'s built-ins');
      assert.deepEqual(keys.mariadb!.filter((k) => !k.startsWith(widgetPrefix)), [], 'MariaDB holds only the custom-resource group');
      assert.deepEqual(
        keys.default.filter((k) => k.startsWith(widgetPrefix) || (nsPattern.test(k) && !k.startsWith(widgetPrefix))),
        [],
        'the default backend holds none of the routed keys',
      );
      assert.ok(keys.postgres!.includes(`/registry/events/${ns}/web.ttl`), 'the expired event had been stored (and deleted) on PostgreSQL');
    });
    it('a watch continues across a middleware restart, and a watch from a resourceVersion before it resumes', async () => {
      const start = await core.createNamespacedConfigMap({ namespace: other, body: cm('before-restart') });
      const rvBefore = start.metadata!.resourceVersion!;
      const live = await KubeWatch.open(kc, `/api/v1/namespaces/${other}/configmaps`, { resourceVersion: rvBefore, allowWatchBookmarks: true });
      watches.push(live);
      await stack.middleware.stop();
      await stack.middleware.restart();
      // The API server reconnects by itself; writes succeed again once it has.
      await waitUntil('a write through the API server after the middleware restart', async () =>
        core.createNamespacedConfigMap({ namespace: other, body: cm('after-restart') }).then(() => true), { timeoutMs: 60_000, intervalMs: 500 });
      await live.waitFor('ADDED', 'after-restart', 60_000);
      assert.equal(live.ended, undefined, 'the client watch was not broken by the middleware restart');
      const resumed = await KubeWatch.open(kc, `/api/v1/namespaces/${other}/configmaps`, { resourceVersion: rvBefore });
      watches.push(resumed);
      await resumed.waitFor('ADDED', 'after-restart');
      assert.deepEqual(resumed.seen.filter((s) => s.endsWith('-restart')), ['ADDED after-restart'], 'nothing replayed from before its resourceVersion');
      for (const w of [live, resumed]) {
        assert.equal(new Set(w.events.filter((e) => e.type !== 'BOOKMARK').map((e) => e.resourceVersion)).size, w.seen.length, 'no event delivered twice');
      }
    });

    it('a continue token older than the compaction revision answers 410 Gone', async () => {
      const first = await core.listNamespacedConfigMap({ namespace: 'paging', limit: 5 });
      const token = first.metadata!._continue!;
      assert.ok(token);
      for (let i = 0; i < 3; i++) await core.createNamespacedConfigMap({ namespace: other, body: cm(`bump-${i}`) });
      // Compact the way another kube-apiserver's compactor does (its compact_rev_key protocol), at the current revision.
      const rev = await compactLikeKubeApiServer(etcd);
      assert.ok(rev > BigInt(first.metadata!.resourceVersion!));
      // The API server learns the compaction through compact_rev_key; its watch cache drops older snapshots on its
      // next compaction poll, then the continue request reaches the store, which must refuse it.
      const gone = await waitUntil(
        'the expired continue token to be refused',
        async () => {
          try {
            await core.listNamespacedConfigMap({ namespace: 'paging', limit: 5, _continue: token });
            return undefined;
          } catch (e: any) {
            return e;
          }
        },
        { timeoutMs: 60_000, intervalMs: 1_000 },
      );
      assert.equal(gone.code, 410, `410 Gone, got ${gone.code}: ${JSON.stringify(gone.body)}`);
      const status = typeof gone.body === 'string' ? JSON.parse(gone.body) : gone.body;
      assert.equal(status.reason, 'Expired');
      // A fresh list still works.
      assert.equal((await core.listNamespacedConfigMap({ namespace: 'paging', limit: 5 })).items.length, 5);
    });

  });
}

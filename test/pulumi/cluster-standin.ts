/**
 * What a cluster does besides its API server, done the smallest way so that `pulumi up` and `pulumi destroy`
 * against a bare kube-apiserver (no controller manager, no nodes, no operators) complete:
 *
 * - Deployments: a ReplicaSet per pod template (revision annotation, owner reference) reported as ready, and
 *   the Deployment's status (Available, Progressing/NewReplicaSetAvailable), as the deployment controller and
 *   the kubelets would report once the pods run. No pod is created or run.
 * - PersistentVolumeClaims: Bound. Services: an Endpoints object with one address from TEST-NET-1
 *   (192.0.2.0/24, documentation only: nothing is ever sent there).
 * - Custom resources of third-party operators whose charts cannot be installed here: the status their
 *   operator reports when done (CloudNativePG Cluster `Ready`, Database `applied`); with a CnpgStandIn, only
 *   once a real PostgreSQL server holds the Cluster's owner and databases (cnpg-standin.ts).
 * - Deletion: in a namespace being deleted, what is left is deleted and the namespace finalized (the namespace
 *   controller's job; `namespaceLeftovers` lists what was left besides the stand-in's own objects);
 *   ReplicaSets and Endpoints whose owner is gone are removed (the garbage collector's job).
 *
 * Everything it writes carries the label `harikube.test/stand-in=true`; `actions` lists what it did.
 * HariKube's own TopologyConfig status is never faked here: that is the operator's to report.
 */
import { createHash } from 'node:crypto';
import { kubeRequest, type KubeAccess, type KubeResponse } from '../support/kube-request.js';
import type { CnpgStandIn } from './cnpg-standin.js';

export type { KubeAccess };

export const STAND_IN_LABEL = 'harikube.test/stand-in';
const ADDRESS = '192.0.2.10';
const TICK_MS = 300;

type Obj = { apiVersion?: string; kind?: string; metadata: { name: string; namespace?: string; uid?: string; labels?: Record<string, string>; annotations?: Record<string, string>; ownerReferences?: Array<{ uid: string; kind: string }>; deletionTimestamp?: string; generation?: number }; spec?: any; status?: any };

/** Custom resources the stand-in reports done, as their operators would. */
export const OPERATOR_STATUS: Array<{ path: string; done: (o: Obj) => boolean; status: (o: Obj) => Record<string, unknown> }> = [
  {
    path: '/apis/postgresql.cnpg.io/v1/clusters',
    done: (o) => (o.status?.conditions ?? []).some((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True'),
    status: (o) => ({
      phase: 'Cluster in healthy state',
      instances: o.spec?.instances ?? 1,
      readyInstances: o.spec?.instances ?? 1,
      conditions: [{ type: 'Ready', status: 'True', reason: 'ClusterIsReady', message: 'Cluster is Ready', lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') }],
    }),
  },
  {
    path: '/apis/postgresql.cnpg.io/v1/databases',
    done: (o) => o.status?.applied === true,
    status: () => ({ applied: true, observedGeneration: 1 }),
  },
];

/** One request to the API server (test/support/kube-request.ts); any status resolves. */
export function kube(access: KubeAccess, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<KubeResponse> {
  return kubeRequest(access, method, path, { body, contentType });
}

const base = (o: Obj) => (o.metadata.namespace ? `/namespaces/${o.metadata.namespace}` : '');

export class ClusterStandIn {
  readonly actions: string[] = [];
  readonly errors: string[] = [];
  /** Objects (not the stand-in's) it deleted from a namespace being deleted, as `Kind namespace/name`. */
  readonly namespaceLeftovers: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly access: KubeAccess,
    /** Makes CloudNativePG's objects real (cnpg-standin.ts) before they are reported done; without it only status is reported. */
    private readonly cnpg?: CnpgStandIn,
  ) {}

  start(): void {
    const loop = async () => {
      try {
        await this.tick();
      } catch (err) {
        this.errors.push(String(err));
      }
      if (this.timer !== undefined) this.timer = setTimeout(() => (this.running = loop()), TICK_MS);
    };
    this.timer = setTimeout(() => (this.running = loop()), 0);
  }

  async stop(): Promise<void> {
    const t = this.timer;
    this.timer = undefined;
    clearTimeout(t);
    await this.running;
  }

  private async call(method: string, path: string, body?: unknown, contentType?: string): Promise<any> {
    const r = await kube(this.access, method, path, body, contentType);
    if (r.status >= 300 && !(method === 'DELETE' && r.status === 404) && r.status !== 409) {
      throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body).slice(0, 400)}`);
    }
    return r.body;
  }

  private async list(path: string): Promise<Obj[]> {
    const r = await kube(this.access, 'GET', path);
    if (r.status === 404) return [];
    if (r.status !== 200) throw new Error(`GET ${path}: ${r.status}`);
    return (r.body.items ?? []) as Obj[];
  }

  private merge(path: string, body: unknown): Promise<any> {
    return this.call('PATCH', path, body, 'application/merge-patch+json');
  }

  private async tick(): Promise<void> {
    await this.deployments();
    await this.claims();
    await this.services();
    await this.operators();
    await this.namespaces();
  }

  private async deployments(): Promise<void> {
    const deployments = await this.list('/apis/apps/v1/deployments');
    const replicaSets = await this.list('/apis/apps/v1/replicasets');
    const uids = new Set(deployments.map((d) => d.metadata.uid));
    for (const rs of replicaSets) {
      const owner = rs.metadata.ownerReferences?.find((r) => r.kind === 'Deployment');
      if (rs.metadata.labels?.[STAND_IN_LABEL] === 'true' && owner && !uids.has(owner.uid)) {
        await this.call('DELETE', `/apis/apps/v1${base(rs)}/replicasets/${rs.metadata.name}`);
        this.actions.push(`deleted ReplicaSet ${rs.metadata.namespace}/${rs.metadata.name} (owner gone)`);
      }
    }
    for (const d of deployments) {
      if (d.metadata.deletionTimestamp) continue;
      const replicas: number = d.spec.replicas ?? 1;
      const hash = createHash('sha256').update(JSON.stringify(d.spec.template)).digest('hex').slice(0, 10);
      const owned = replicaSets.filter((rs) => rs.metadata.ownerReferences?.some((r) => r.uid === d.metadata.uid));
      let current = owned.find((rs) => rs.metadata.labels?.['pod-template-hash'] === hash);
      const dPath = `/apis/apps/v1${base(d)}/deployments/${d.metadata.name}`;
      if (!current) {
        const revision = Math.max(0, ...owned.map((rs) => Number(rs.metadata.annotations?.['deployment.kubernetes.io/revision'] ?? 0))) + 1;
        const labels = { ...d.spec.template.metadata?.labels, 'pod-template-hash': hash };
        current = await this.call('POST', `/apis/apps/v1${base(d)}/replicasets`, {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          metadata: {
            name: `${d.metadata.name}-${hash}`,
            namespace: d.metadata.namespace,
            labels: { ...labels, [STAND_IN_LABEL]: 'true' },
            annotations: { 'deployment.kubernetes.io/revision': String(revision) },
            ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: d.metadata.name, uid: d.metadata.uid, controller: true, blockOwnerDeletion: true }],
          },
          spec: {
            replicas,
            selector: { matchLabels: { ...d.spec.selector.matchLabels, 'pod-template-hash': hash } },
            template: { ...d.spec.template, metadata: { ...d.spec.template.metadata, labels } },
          },
        });
        for (const old of owned) await this.merge(`/apis/apps/v1${base(old)}/replicasets/${old.metadata.name}`, { spec: { replicas: 0 } });
        this.actions.push(`created ReplicaSet ${d.metadata.namespace}/${current!.metadata.name} (revision ${revision})`);
      }
      const rs = current!;
      const revision = rs.metadata.annotations?.['deployment.kubernetes.io/revision'];
      const rsPath = `/apis/apps/v1${base(rs)}/replicasets/${rs.metadata.name}`;
      if (rs.status?.readyReplicas !== replicas || rs.status?.observedGeneration !== rs.metadata.generation) {
        await this.merge(`${rsPath}/status`, { status: { replicas, readyReplicas: replicas, availableReplicas: replicas, fullyLabeledReplicas: replicas, observedGeneration: rs.metadata.generation } });
      }
      if (d.metadata.annotations?.['deployment.kubernetes.io/revision'] !== revision) {
        await this.merge(dPath, { metadata: { annotations: { 'deployment.kubernetes.io/revision': revision } } });
      }
      const available = (d.status?.conditions ?? []).some((c: { type: string; status: string }) => c.type === 'Available' && c.status === 'True');
      if (!available || d.status?.observedGeneration !== d.metadata.generation || d.status?.updatedReplicas !== replicas) {
        const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
        await this.merge(`${dPath}/status`, {
          status: {
            observedGeneration: d.metadata.generation,
            replicas,
            updatedReplicas: replicas,
            readyReplicas: replicas,
            availableReplicas: replicas,
            conditions: [
              { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable', message: 'Deployment has minimum availability.', lastUpdateTime: now, lastTransitionTime: now },
              { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable', message: `ReplicaSet "${rs.metadata.name}" has successfully progressed.`, lastUpdateTime: now, lastTransitionTime: now },
            ],
          },
        });
        this.actions.push(`Deployment ${d.metadata.namespace}/${d.metadata.name} available (revision ${revision})`);
      }
    }
  }

  private async claims(): Promise<void> {
    for (const pvc of await this.list('/api/v1/persistentvolumeclaims')) {
      const path = `/api/v1${base(pvc)}/persistentvolumeclaims/${pvc.metadata.name}`;
      if (pvc.metadata.deletionTimestamp) {
        // The pvc-protection controller: no pod uses the claim, so its finalizer goes.
        if ((pvc.metadata as { finalizers?: string[] }).finalizers?.length) await this.merge(path, { metadata: { finalizers: null } });
        continue;
      }
      if (pvc.status?.phase === 'Bound') continue;
      await this.merge(`${path}/status`, {
        status: { phase: 'Bound', accessModes: pvc.spec.accessModes, capacity: { storage: pvc.spec.resources?.requests?.storage ?? '1Gi' } },
      });
      this.actions.push(`PersistentVolumeClaim ${pvc.metadata.namespace}/${pvc.metadata.name} bound`);
    }
  }

  private async services(): Promise<void> {
    const services = await this.list('/api/v1/services');
    const endpoints = await this.list('/api/v1/endpoints');
    const have = new Set(endpoints.map((e) => `${e.metadata.namespace}/${e.metadata.name}`));
    const wanted = new Set<string>();
    for (const s of services) {
      if (s.metadata.namespace === 'default' || s.metadata.namespace === 'kube-system' || s.spec.type === 'ExternalName' || s.metadata.deletionTimestamp) continue;
      const key = `${s.metadata.namespace}/${s.metadata.name}`;
      wanted.add(key);
      if (have.has(key)) continue;
      const ports = (s.spec.ports ?? []).map((p: { name?: string; port: number; targetPort?: number | string; protocol?: string }) => ({
        ...(p.name ? { name: p.name } : {}),
        port: typeof p.targetPort === 'number' ? p.targetPort : p.port,
        protocol: p.protocol ?? 'TCP',
      }));
      await this.call('POST', `/api/v1${base(s)}/endpoints`, {
        apiVersion: 'v1',
        kind: 'Endpoints',
        metadata: { name: s.metadata.name, namespace: s.metadata.namespace, labels: { [STAND_IN_LABEL]: 'true' } },
        subsets: [{ addresses: [{ ip: ADDRESS }], ports }],
      });
      this.actions.push(`Endpoints ${key}`);
    }
    for (const e of endpoints) {
      const key = `${e.metadata.namespace}/${e.metadata.name}`;
      if (e.metadata.labels?.[STAND_IN_LABEL] === 'true' && !wanted.has(key)) {
        await this.call('DELETE', `/api/v1${base(e)}/endpoints/${e.metadata.name}`);
        this.actions.push(`deleted Endpoints ${key} (service gone)`);
      }
    }
  }

  private async operators(): Promise<void> {
    for (const kind of OPERATOR_STATUS) {
      const objects = await this.list(kind.path);
      if (this.cnpg && kind.path.endsWith('/clusters')) {
        await this.cnpg.sweep(new Set(objects.filter((o) => !o.metadata.deletionTimestamp).map((o) => `${o.metadata.namespace}/${o.metadata.name}`)));
      }
      for (const o of objects) {
        if (kind.done(o) || o.metadata.deletionTimestamp) continue;
        if (this.cnpg && !(await this.cnpg.ensure(kind.path, o))) continue;
        const [, , group, version] = kind.path.split('/');
        const plural = kind.path.split('/').pop();
        await this.merge(`/apis/${group}/${version}${base(o)}/${plural}/${o.metadata.name}/status`, { status: kind.status(o) });
        this.actions.push(`${o.kind} ${o.metadata.namespace}/${o.metadata.name} reported done`);
      }
    }
  }

  private async namespaces(): Promise<void> {
    for (const ns of await this.list('/api/v1/namespaces')) {
      if (!ns.metadata.deletionTimestamp) continue;
      const name = ns.metadata.name;
      // The namespace controller: delete what is left in it (recorded: the test says what may be left), then
      // finalize; the garbage collector's foregroundDeletion finalizer goes with it.
      for (const o of await listAll(this.access, (obj) => obj.metadata.namespace === name)) {
        await this.call('DELETE', o.path);
        // e.g. kubernetes.io/pvc-protection, which its controller lifts once no pod uses the claim
        if ((await kube(this.access, 'GET', o.path)).status === 200) await this.merge(o.path, { metadata: { finalizers: null } });
        if (o.labels[STAND_IN_LABEL] !== 'true') this.namespaceLeftovers.push(`${o.kind} ${name}/${o.name}`);
      }
      await this.call('PUT', `/api/v1/namespaces/${name}/finalize`, { ...ns, spec: { ...ns.spec, finalizers: [] } });
      if ((ns.metadata as { finalizers?: string[] }).finalizers?.length) await this.merge(`/api/v1/namespaces/${name}`, { metadata: { finalizers: null } });
      await this.call('DELETE', `/api/v1/namespaces/${name}`);
      this.actions.push(`Namespace ${name} finalized`);
    }
  }
}

export interface Listed {
  kind: string;
  name: string;
  namespace?: string;
  labels: Record<string, string>;
  /** The object's API path. */
  path: string;
}

/** Every object of every listable resource the API server discovers (events excepted) that `keep` selects. */
export async function listAll(access: KubeAccess, keep: (o: Obj) => boolean): Promise<Listed[]> {
  const groupVersions = ['/api/v1'];
  const groups = (await kube(access, 'GET', '/apis')).body.groups as Array<{ preferredVersion: { groupVersion: string } }>;
  for (const g of groups) groupVersions.push(`/apis/${g.preferredVersion.groupVersion}`);
  const found: Listed[] = [];
  for (const gv of groupVersions) {
    const resources = (await kube(access, 'GET', gv)).body.resources as Array<{ name: string; kind: string; verbs: string[]; namespaced: boolean }>;
    for (const r of resources) {
      if (r.name.includes('/') || !r.verbs.includes('list') || r.kind === 'Event') continue;
      const list = await kube(access, 'GET', `${gv}/${r.name}`);
      if (list.status !== 200) continue;
      for (const o of list.body.items as Obj[]) {
        if (!keep(o)) continue;
        const ns = r.namespaced && o.metadata.namespace ? `/namespaces/${o.metadata.namespace}` : '';
        found.push({ kind: r.kind, name: o.metadata.name, namespace: o.metadata.namespace, labels: o.metadata.labels ?? {}, path: `${gv}${ns}/${r.name}/${o.metadata.name}` });
      }
    }
  }
  return found;
}

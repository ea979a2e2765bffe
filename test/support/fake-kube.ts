/**
 * An in-process fake Kubernetes API server on 127.0.0.1 for operator tests: enough of kube-apiserver's REST
 * semantics for Secrets, ConfigMaps, Events, Leases and TopologyConfigs: list (label selectors), watch (chunked JSON
 * lines from a resourceVersion; 410 Gone for compacted versions), get, create, update (optimistic
 * concurrency), merge and JSON patches, the status subresource, generation, finalizers and graceful deletion.
 * Tests inject faults, close watches, restart the server on the same port, and wait for store states.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { isDeepStrictEqual } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';

interface ResourceType {
  group: string;
  version: string;
  plural: string;
  kind: string;
  status: boolean;
  generation: boolean;
}

const TYPES: ResourceType[] = [
  { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', status: false, generation: false },
  { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', status: false, generation: false },
  { group: '', version: 'v1', plural: 'events', kind: 'Event', status: false, generation: false },
  { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease', status: false, generation: false },
  { group: 'harikube.info', version: 'v1', plural: 'topologyconfigs', kind: 'TopologyConfig', status: true, generation: true },
];

export const FAKE_TOKEN = 'fake-kube-token';

type Obj = Record<string, any>;

export interface RequestRecord {
  method: string;
  path: string;
  query: string;
  userAgent: string;
  status: number;
  body?: unknown;
}

export interface RequestInfo {
  method: string;
  path: string;
  query: URLSearchParams;
  userAgent: string;
  body: any;
}

/** Return an HTTP status to fail the request with, 'drop' to cut the connection, 'hang' to never answer, or undefined to serve it. */
export type Fault = (req: RequestInfo) => number | 'drop' | 'hang' | undefined;

interface Watcher {
  plural: string;
  namespace?: string;
  selector: (labels: Record<string, string> | undefined) => boolean;
  res: http.ServerResponse;
}

interface Change {
  rev: number;
  plural: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: Obj;
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

const clone = <T>(v: T): T => structuredClone(v);
const nowSeconds = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

function parseSelector(text: string | null): Watcher['selector'] {
  if (!text) return () => true;
  const terms = text.split(',').map((t) => t.trim()).filter(Boolean);
  return (labels) =>
    terms.every((t) => {
      const l = labels ?? {};
      let m: RegExpExecArray | null;
      if ((m = /^([^!=]+)!=(.*)$/.exec(t))) return l[m[1]!] !== m[2];
      if ((m = /^([^!=]+)==?(.*)$/.exec(t))) return l[m[1]!] === m[2];
      if (t.startsWith('!')) return !(t.slice(1) in l);
      return t in l;
    });
}

/** RFC 6902 JSON pointer helpers. */
function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new HttpError(422, 'Invalid', `JSON pointer "${path}" must start with "/"`);
  return path.slice(1).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function applyJsonPatch(doc: Obj, ops: any[]): Obj {
  if (!Array.isArray(ops)) throw new HttpError(400, 'BadRequest', 'a JSON patch must be an array of operations');
  let out = clone(doc);
  for (const op of ops) {
    const parts = pointer(op.path);
    const parentOf = (p: string[]) => {
      let node: any = out;
      for (const seg of p.slice(0, -1)) {
        if (node === null || typeof node !== 'object' || !(seg in node)) {
          throw new HttpError(422, 'Invalid', `JSON patch ${op.op} ${op.path}: path does not exist`);
        }
        node = node[seg];
      }
      return node;
    };
    const getAt = (p: string[]) => p.reduce((n: any, seg) => (n === undefined || n === null ? undefined : n[seg]), out);
    switch (op.op) {
      case 'test':
        if (!isDeepStrictEqual(getAt(parts), op.value)) {
          throw new HttpError(422, 'Invalid', `JSON patch test ${op.path} failed`);
        }
        break;
      case 'add':
      case 'replace': {
        if (parts.length === 0) {
          out = clone(op.value);
          break;
        }
        const parent = parentOf(parts);
        const last = parts[parts.length - 1]!;
        if (op.op === 'replace' && !(last in parent)) throw new HttpError(422, 'Invalid', `JSON patch replace ${op.path}: no value there`);
        if (Array.isArray(parent)) {
          const i = last === '-' ? parent.length : Number(last);
          if (op.op === 'add') parent.splice(i, 0, clone(op.value));
          else parent[i] = clone(op.value);
        } else parent[last] = clone(op.value);
        break;
      }
      case 'remove': {
        const parent = parentOf(parts);
        const last = parts[parts.length - 1]!;
        if (!(last in parent)) throw new HttpError(422, 'Invalid', `JSON patch remove ${op.path}: no value there`);
        if (Array.isArray(parent)) parent.splice(Number(last), 1);
        else delete parent[last];
        break;
      }
      default:
        throw new HttpError(422, 'Invalid', `JSON patch op "${op.op}" is not supported by the fake`);
    }
  }
  return out;
}

/** RFC 7386 merge patch. */
function applyMergePatch(target: any, patch: any): any {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return clone(patch);
  const out = target && typeof target === 'object' && !Array.isArray(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = applyMergePatch(out[k], v);
  }
  return out;
}

export class FakeKube {
  readonly requests: RequestRecord[] = [];
  fault?: Fault;
  private readonly objects = new Map<string, Map<string, Obj>>(TYPES.map((t) => [t.plural, new Map()]));
  private history: Change[] = [];
  private compactedBefore = 0;
  private rev = 1;
  private readonly watchers = new Set<Watcher>();
  private readonly sockets = new Set<Socket>();
  private readonly changed = new EventEmitter();
  private server?: http.Server;
  port = 0;

  static async start(): Promise<FakeKube> {
    const fake = new FakeKube();
    await fake.listen(0);
    return fake;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** A KubeConfig for this server (bearer token auth, as a service account would use). */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromString(this.kubeConfigYaml());
    return kc;
  }

  kubeConfigYaml(): string {
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: fake\n  cluster:\n    server: ${this.url}\n    insecure-skip-tls-verify: true`,
      'users:',
      `- name: fake\n  user:\n    token: ${FAKE_TOKEN}`,
      'contexts:',
      '- name: fake\n  context:\n    cluster: fake\n    user: fake',
      'current-context: fake',
      '',
    ].join('\n');
  }

  // ---- direct store access for tests ----

  get(plural: string, namespace: string, name: string): Obj | undefined {
    const o = this.objects.get(plural)?.get(`${namespace}/${name}`);
    return o && clone(o);
  }

  list(plural: string): Obj[] {
    return [...(this.objects.get(plural)?.values() ?? [])].map(clone);
  }

  /** Creates an object as a client would (POST semantics). */
  create(obj: Obj): Obj {
    const type = this.typeOfKind(obj.kind);
    return clone(this.doCreate(type, obj.metadata.namespace, obj));
  }

  /** Replaces spec/data/metadata of an object as a client would (PUT without resourceVersion). */
  update(obj: Obj): Obj {
    const type = this.typeOfKind(obj.kind);
    const copy = clone(obj);
    delete copy.metadata.resourceVersion;
    return clone(this.doUpdate(type, obj.metadata.namespace, obj.metadata.name, copy, false));
  }

  /** Deletes as a client would (graceful when finalizers are set). */
  delete(plural: string, namespace: string, name: string): void {
    this.doDelete(this.type(plural), namespace, name);
  }

  /**
   * Waits until `predicate` holds (checked at once and after every change to the store); rejects after
   * `timeoutMs` with `what` and the store's relevant state, so a failing test says what it waited for.
   */
  until<T>(what: string, predicate: () => T | undefined | false, timeoutMs = 15_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        let v: T | undefined | false;
        try {
          v = predicate();
        } catch {
          v = undefined;
        }
        if (v) {
          cleanup();
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        const state = ['topologyconfigs', 'secrets', 'leases'].map((p) => `${p}: ${JSON.stringify(this.list(p))}`).join('\n');
        reject(new Error(`timed out after ${timeoutMs} ms waiting for: ${what}\n${state}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.changed.off('change', check);
      };
      this.changed.on('change', check);
      check();
    });
  }

  /** Cuts every open watch connection (clients must re-watch). */
  closeWatches(): void {
    for (const w of this.watchers) w.res.destroy();
    this.watchers.clear();
  }

  /**
   * Stops the server (all connections cut) and starts it again on the same port. With `forgetHistory`, every
   * resourceVersion clients hold is compacted, so their watches get 410 Gone and they must re-list.
   * `whileDown` runs while nothing listens (e.g. to change objects "behind the clients' backs").
   */
  async restart(opts: { forgetHistory?: boolean; whileDown?: () => unknown } = {}): Promise<void> {
    const port = this.port;
    await this.close();
    await opts.whileDown?.();
    if (opts.forgetHistory) {
      this.rev++;
      this.compactedBefore = this.rev;
      this.history = [];
    }
    await this.listen(port);
  }

  async stop(): Promise<void> {
    await this.close();
    this.changed.removeAllListeners();
  }

  // ---- server ----

  private async listen(port: number): Promise<void> {
    const server = http.createServer((req, res) => void this.handle(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  private async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.closeWatches();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    server.closeAllConnections();
    await closed;
  }

  private type(plural: string): ResourceType {
    const t = TYPES.find((x) => x.plural === plural);
    if (!t) throw new HttpError(404, 'NotFound', `the server could not find the requested resource (${plural})`);
    return t;
  }

  private typeOfKind(kind: string): ResourceType {
    const t = TYPES.find((x) => x.kind === kind);
    if (!t) throw new Error(`fake kube does not serve kind ${kind}`);
    return t;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const record: RequestRecord = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.search,
      userAgent: String(req.headers['user-agent'] ?? ''),
      status: 0,
    };
    this.requests.push(record);
    const send = (code: number, body: unknown) => {
      record.status = code;
      res.writeHead(code, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
    };
    try {
      let body: any;
      if (text) {
        try {
          body = JSON.parse(text);
        } catch {
          throw new HttpError(400, 'BadRequest', 'body is not JSON');
        }
        record.body = body;
      }
      if (req.headers.authorization !== `Bearer ${FAKE_TOKEN}`) throw new HttpError(401, 'Unauthorized', 'Unauthorized');
      const fault = this.fault?.({ method: record.method, path: url.pathname, query: url.searchParams, userAgent: record.userAgent, body });
      if (fault === 'drop') {
        record.status = -1;
        req.socket.destroy();
        return;
      }
      if (fault === 'hang') {
        record.status = -1; // never answered (the socket closes with the server)
        return;
      }
      if (fault) throw new HttpError(fault, fault === 409 ? 'Conflict' : 'InternalError', `injected fault ${fault}`);
      const route = this.route(url.pathname);
      const method = record.method;
      if (method === 'GET' && !route.name && (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1')) {
        record.status = 200;
        this.watch(route.type, route.namespace, url.searchParams, res);
        return;
      }
      if (method === 'GET' && !route.name) return send(200, this.doList(route.type, route.namespace, url.searchParams));
      if (method === 'POST' && !route.name) return send(201, this.doCreate(route.type, route.namespace, body));
      if (!route.name) throw new HttpError(405, 'MethodNotAllowed', `${method} on a collection`);
      if (method === 'GET') return send(200, this.mustGet(route.type, route.namespace, route.name));
      if (method === 'PUT') return send(200, this.doUpdate(route.type, route.namespace, route.name, body, route.status));
      if (method === 'PATCH') {
        const ct = String(req.headers['content-type'] ?? '').split(';')[0]!.trim();
        const current = this.mustGet(route.type, route.namespace, route.name);
        let next: Obj;
        if (ct === 'application/json-patch+json') next = applyJsonPatch(current, body);
        else if (ct === 'application/merge-patch+json') next = applyMergePatch(current, body);
        else throw new HttpError(415, 'UnsupportedMediaType', `the fake does not support patch type "${ct}"`);
        // A patch carries a resourceVersion precondition only if it sets one itself.
        const precondition = next.metadata?.resourceVersion !== current.metadata.resourceVersion;
        if (!precondition) delete next.metadata.resourceVersion;
        return send(200, this.doUpdate(route.type, route.namespace, route.name, next, route.status));
      }
      if (method === 'DELETE') return send(200, this.doDelete(route.type, route.namespace, route.name));
      throw new HttpError(405, 'MethodNotAllowed', `${method} is not supported`);
    } catch (e) {
      const err = e instanceof HttpError ? e : new HttpError(500, 'InternalError', (e as Error).message);
      send(err.code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: err.message, reason: err.reason, code: err.code });
    }
  }

  private route(path: string): { type: ResourceType; namespace?: string; name?: string; status: boolean } {
    const m =
      /^\/(?:api\/v1|apis\/([^/]+)\/([^/]+))(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?(?:\/(status))?$/.exec(path);
    if (!m) throw new HttpError(404, 'NotFound', `the server could not find the requested resource (${path})`);
    const type = this.type(m[4]!);
    if (type.group !== (m[1] ?? '') || (m[2] ?? 'v1') !== type.version) {
      throw new HttpError(404, 'NotFound', `the server could not find the requested resource (${path})`);
    }
    if (m[6] && !type.status) throw new HttpError(404, 'NotFound', `${type.plural} has no status subresource`);
    return { type, namespace: m[3] ? decodeURIComponent(m[3]) : undefined, name: m[5] ? decodeURIComponent(m[5]) : undefined, status: Boolean(m[6]) };
  }

  private store(type: ResourceType): Map<string, Obj> {
    return this.objects.get(type.plural)!;
  }

  private mustGet(type: ResourceType, namespace: string | undefined, name: string): Obj {
    const o = this.store(type).get(`${namespace}/${name}`);
    if (!o) throw new HttpError(404, 'NotFound', `${type.plural} "${name}" not found`);
    return clone(o);
  }

  private record(type: ResourceType, kind: Change['type'], obj: Obj): void {
    const change: Change = { rev: Number(obj.metadata.resourceVersion), plural: type.plural, type: kind, object: clone(obj) };
    this.history.push(change);
    for (const w of this.watchers) this.deliver(w, change);
    this.changed.emit('change');
  }

  private deliver(w: Watcher, change: Change): void {
    if (w.plural !== change.plural) return;
    if (w.namespace && change.object.metadata.namespace !== w.namespace) return;
    if (!w.selector(change.object.metadata.labels)) return;
    w.res.write(JSON.stringify({ type: change.type, object: change.object }) + '\n');
  }

  private doList(type: ResourceType, namespace: string | undefined, q: URLSearchParams): Obj {
    const selector = parseSelector(q.get('labelSelector'));
    const items = [...this.store(type).values()]
      .filter((o) => (!namespace || o.metadata.namespace === namespace) && selector(o.metadata.labels))
      .map(clone);
    return {
      apiVersion: type.group ? `${type.group}/${type.version}` : type.version,
      kind: `${type.kind}List`,
      metadata: { resourceVersion: String(this.rev) },
      items,
    };
  }

  private watch(type: ResourceType, namespace: string | undefined, q: URLSearchParams, res: http.ServerResponse): void {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders(); // as kube-apiserver does: the client knows the watch is open before the first event
    const w: Watcher = { plural: type.plural, namespace, selector: parseSelector(q.get('labelSelector')), res };
    const rv = q.get('resourceVersion');
    if (!rv || rv === '0') {
      for (const o of this.store(type).values()) {
        this.deliver(w, { rev: Number(o.metadata.resourceVersion), plural: type.plural, type: 'ADDED', object: o });
      }
    } else if (Number(rv) < this.compactedBefore) {
      res.end(
        JSON.stringify({
          type: 'ERROR',
          object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410, message: `too old resource version: ${rv} (${this.compactedBefore})` },
        }) + '\n',
      );
      return;
    } else {
      for (const c of this.history) if (c.rev > Number(rv)) this.deliver(w, c);
    }
    this.watchers.add(w);
    const timeout = Number(q.get('timeoutSeconds') ?? 0);
    const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : undefined;
    res.once('close', () => {
      clearTimeout(timer);
      this.watchers.delete(w);
    });
  }

  private doCreate(type: ResourceType, namespace: string | undefined, body: Obj): Obj {
    if (!body?.metadata) throw new HttpError(400, 'BadRequest', 'metadata is required');
    const obj = clone(body);
    if (!obj.metadata.name && obj.metadata.generateName) obj.metadata.name = obj.metadata.generateName + randomUUID().slice(0, 5);
    if (!obj.metadata.name) throw new HttpError(422, 'Invalid', 'metadata.name: Required value');
    const ns = namespace ?? obj.metadata.namespace;
    if (obj.metadata.namespace && ns && obj.metadata.namespace !== ns) {
      throw new HttpError(400, 'BadRequest', 'the namespace of the object does not match the namespace of the request');
    }
    obj.metadata.namespace = ns;
    const key = `${ns}/${obj.metadata.name}`;
    if (this.store(type).has(key)) throw new HttpError(409, 'AlreadyExists', `${type.plural} "${obj.metadata.name}" already exists`);
    obj.apiVersion = type.group ? `${type.group}/${type.version}` : type.version;
    obj.kind = type.kind;
    obj.metadata.uid = randomUUID();
    obj.metadata.creationTimestamp = nowSeconds();
    obj.metadata.resourceVersion = String(++this.rev);
    delete obj.metadata.deletionTimestamp;
    if (type.generation) obj.metadata.generation = 1;
    if (type.status) delete obj.status;
    if (obj.metadata.finalizers?.length === 0) delete obj.metadata.finalizers;
    this.store(type).set(key, obj);
    this.record(type, 'ADDED', obj);
    return clone(obj);
  }

  private doUpdate(type: ResourceType, namespace: string | undefined, name: string, body: Obj, statusOnly: boolean): Obj {
    const current = this.mustGet(type, namespace, name);
    if (!body?.metadata) throw new HttpError(400, 'BadRequest', 'metadata is required');
    const rv = body.metadata.resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== current.metadata.resourceVersion) {
      throw new HttpError(409, 'Conflict', `Operation cannot be fulfilled on ${type.plural} "${name}": the object has been modified; please apply your changes to the latest version and try again`);
    }
    let next: Obj;
    if (statusOnly) {
      next = { ...current, status: clone(body.status) };
    } else {
      next = clone(body);
      if (type.status) next.status = current.status;
      if (next.status === undefined) delete next.status;
      for (const f of ['uid', 'creationTimestamp', 'deletionTimestamp', 'generation', 'namespace', 'name'] as const) {
        if (current.metadata[f] === undefined) delete next.metadata[f];
        else next.metadata[f] = current.metadata[f];
      }
      next.apiVersion = current.apiVersion;
      next.kind = current.kind;
      const added = (next.metadata.finalizers ?? []).filter((f: string) => !(current.metadata.finalizers ?? []).includes(f));
      if (current.metadata.deletionTimestamp && added.length) {
        throw new HttpError(422, 'Invalid', `metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}`);
      }
      if (next.metadata.finalizers?.length === 0) delete next.metadata.finalizers;
      if (type.generation && !isDeepStrictEqual(next.spec, current.spec)) next.metadata.generation = current.metadata.generation + 1;
    }
    const comparable = (o: Obj) => ({ ...o, metadata: { ...o.metadata, resourceVersion: undefined } });
    if (isDeepStrictEqual(comparable(next), comparable(current))) return current; // no-op writes do not bump the version
    next.metadata.resourceVersion = String(++this.rev);
    const key = `${namespace}/${name}`;
    if (next.metadata.deletionTimestamp && !next.metadata.finalizers?.length) {
      this.store(type).delete(key);
      this.record(type, 'DELETED', next);
      return clone(next);
    }
    this.store(type).set(key, next);
    this.record(type, 'MODIFIED', next);
    return clone(next);
  }

  private doDelete(type: ResourceType, namespace: string | undefined, name: string): Obj {
    const current = this.mustGet(type, namespace, name);
    const key = `${namespace}/${name}`;
    if (current.metadata.finalizers?.length) {
      if (current.metadata.deletionTimestamp) return current;
      current.metadata.deletionTimestamp = nowSeconds();
      if (type.generation) current.metadata.generation++;
      current.metadata.resourceVersion = String(++this.rev);
      this.store(type).set(key, current);
      this.record(type, 'MODIFIED', current);
      return clone(current);
    }
    current.metadata.resourceVersion = String(++this.rev);
    this.store(type).delete(key);
    this.record(type, 'DELETED', current);
    return { kind: 'Status', apiVersion: 'v1', status: 'Success', details: { name, kind: type.plural } };
  }
}

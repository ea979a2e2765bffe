/**
 * A Kubernetes watch through @kubernetes/client-node that records every event it receives, for tests that
 * wait for particular events and check what else arrived (order, duplicates, errors).
 */
import { KubeConfig, Watch } from '@kubernetes/client-node';
import { waitUntil } from './wait.js';

export interface RecordedEvent {
  type: string;
  name: string;
  resourceVersion: string;
  object: any;
}

export class KubeWatch {
  readonly events: RecordedEvent[] = [];
  /** Set when the watch ended (error, or the server closed it). */
  ended: { err: unknown } | undefined;
  private controller: AbortController | undefined;

  private constructor(readonly path: string) {}

  /** Opens a watch on `path` (e.g. /api/v1/namespaces/ns/configmaps) with the given query parameters. */
  static async open(kc: KubeConfig, path: string, params: Record<string, string | number | boolean | undefined> = {}): Promise<KubeWatch> {
    const w = new KubeWatch(path);
    w.controller = await new Watch(kc).watch(
      path,
      params,
      (type, obj) => {
        w.events.push({ type, name: obj?.metadata?.name, resourceVersion: obj?.metadata?.resourceVersion, object: obj });
      },
      (err) => {
        w.ended = { err };
      },
    );
    return w;
  }

  /** Events other than BOOKMARK, as "TYPE name". */
  get seen(): string[] {
    return this.events.filter((e) => e.type !== 'BOOKMARK').map((e) => `${e.type} ${e.name}`);
  }

  /** Waits (bounded) until an event of `type` for `name` has arrived and returns it. */
  waitFor(type: string, name: string, timeoutMs = 30_000): Promise<RecordedEvent> {
    return waitUntil(
      `watch ${this.path}: ${type} ${name} (seen so far: ${this.seen.slice(-10).join(', ')}; ended: ${this.ended ? String(this.ended.err) : 'no'})`,
      () => this.events.find((e) => e.type === type && e.name === name),
      { timeoutMs, intervalMs: 50 },
    );
  }

  close(): void {
    this.controller?.abort();
  }
}

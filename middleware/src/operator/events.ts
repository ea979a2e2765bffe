/**
 * Kubernetes Events (core/v1) about TopologyConfigs, so `kubectl describe` shows what the operator did.
 * Messages are built from status reasons, which never hold endpoints or credentials. Recording is
 * best-effort: a failed Event is logged, never retried, and never fails a reconcile.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../log.js';
import type { KubeClient, KubeObject } from './kube-client.js';
import { eventsPath } from './kube-paths.js';
import { EVENT_SOURCE } from './markers.js';

export type EventType = 'Normal' | 'Warning';

export interface EventRecorder {
  record(about: KubeObject, type: EventType, reason: string, message: string): Promise<void>;
}

const MAX_MESSAGE = 1024;

/** RFC 3339 with whole seconds, as core/v1 Event timestamps are. */
const seconds = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

export function eventRecorder(opts: {
  client: KubeClient;
  /** Reporting instance (the operator's identity). */
  instance: string;
  /** Only the leader records; checked at the moment of writing. */
  canWrite: () => boolean;
  log: Logger;
}): EventRecorder {
  return {
    async record(about, type, reason, message) {
      if (!opts.canWrite()) return;
      const namespace = about.metadata.namespace ?? 'default';
      const now = seconds(new Date());
      const text = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 3)}...` : message;
      try {
        await opts.client.request('POST', eventsPath(namespace), {
          body: {
            apiVersion: 'v1',
            kind: 'Event',
            metadata: { name: `${about.metadata.name}.${Date.now().toString(16)}${randomBytes(3).toString('hex')}`, namespace },
            involvedObject: {
              apiVersion: about.apiVersion,
              kind: about.kind,
              name: about.metadata.name,
              namespace,
              uid: about.metadata.uid,
              resourceVersion: about.metadata.resourceVersion,
            },
            type,
            reason,
            message: text,
            source: { component: EVENT_SOURCE },
            reportingComponent: EVENT_SOURCE,
            reportingInstance: opts.instance,
            firstTimestamp: now,
            lastTimestamp: now,
            count: 1,
          },
        });
      } catch (e) {
        opts.log.warn('could not record an event', { reason, object: `${namespace}/${about.metadata.name}`, error: e });
      }
    },
  };
}

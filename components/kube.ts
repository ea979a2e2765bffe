/**
 * Small Kubernetes building blocks every component shares: labels, the hardened security contexts, probe and
 * readiness-annotation helpers. Pure functions and constants only.
 */
import type * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';

/** Label every object carries so `kubectl get all -l app.kubernetes.io/part-of=harikube` finds the platform. */
export const PART_OF = 'harikube';

/** The selector labels of one workload: stable for its lifetime (a Deployment's selector is immutable). */
export function selectorLabels(name: string, instance: string): Record<string, string> {
  return { 'app.kubernetes.io/name': name, 'app.kubernetes.io/instance': instance };
}

/** Selector labels plus the descriptive ones. */
export function standardLabels(name: string, instance: string, component: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...selectorLabels(name, instance),
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/part-of': PART_OF,
    'app.kubernetes.io/managed-by': 'pulumi',
    ...extra,
  };
}

/** Non-root UID/GID the HariKube image runs as (the Dockerfile creates it). */
export const HARIKUBE_UID = 10001;

/** Pod-level: non-root, RuntimeDefault seccomp, files group-owned so mounted volumes are writable. */
export function restrictedPodSecurityContext(uid = HARIKUBE_UID): k8s.types.input.core.v1.PodSecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: uid,
    fsGroup: uid,
    fsGroupChangePolicy: 'OnRootMismatch',
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** Container-level: read-only root FS, no privilege escalation, every capability dropped (PSS "restricted"). */
export function restrictedContainerSecurityContext(): k8s.types.input.core.v1.SecurityContext {
  return {
    runAsNonRoot: true,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    privileged: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** An HTTP probe. */
export function httpProbe(path: string, port: number | string, opts: { initialDelaySeconds?: number; periodSeconds?: number; failureThreshold?: number; timeoutSeconds?: number } = {}): k8s.types.input.core.v1.Probe {
  return {
    httpGet: { path, port },
    initialDelaySeconds: opts.initialDelaySeconds ?? 5,
    periodSeconds: opts.periodSeconds ?? 10,
    timeoutSeconds: opts.timeoutSeconds ?? 2,
    failureThreshold: opts.failureThreshold ?? 3,
  };
}

/** Resource requests/limits. */
export interface ResourceSettings {
  /** CPU request, e.g. `100m`. */
  cpuRequest?: string;
  /** Memory request, e.g. `128Mi`. */
  memoryRequest?: string;
  /** CPU limit; omitted by default (CPU limits throttle latency-sensitive servers). */
  cpuLimit?: string;
  /** Memory limit, e.g. `512Mi`. */
  memoryLimit?: string;
}

export function resourceRequirements(r: ResourceSettings, defaults: ResourceSettings): k8s.types.input.core.v1.ResourceRequirements {
  const m = { ...defaults, ...r };
  const requests: Record<string, string> = {};
  const limits: Record<string, string> = {};
  if (m.cpuRequest) requests.cpu = m.cpuRequest;
  if (m.memoryRequest) requests.memory = m.memoryRequest;
  if (m.cpuLimit) limits.cpu = m.cpuLimit;
  if (m.memoryLimit) limits.memory = m.memoryLimit;
  return { requests, ...(Object.keys(limits).length ? { limits } : {}) };
}

/**
 * The Pulumi Kubernetes provider's generic await annotation: `pulumi up` waits for it before dependents are
 * created (e.g. `condition=Ready`, or `jsonpath={.status.phase}=Running`).
 */
export const WAIT_FOR_ANNOTATION = 'pulumi.com/waitFor';
/** Tells the provider not to wait (a PVC with a WaitForFirstConsumer class binds only once a pod uses it). */
export const SKIP_AWAIT_ANNOTATION = 'pulumi.com/skipAwait';

export function waitForReady(): Record<string, string> {
  return { [WAIT_FOR_ANNOTATION]: 'condition=Ready' };
}

/** A Kubernetes object name (DNS label) from parts; throws if the result is not one. */
export function dnsLabel(...parts: string[]): string {
  const name = parts.filter(Boolean).join('-').toLowerCase();
  if (name.length > 63 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name)) {
    throw new Error(`"${name}" is not a valid Kubernetes name (DNS label: at most 63 of a-z, 0-9, "-")`);
  }
  return name;
}

/** In-cluster DNS name of a Service. */
export function serviceHost(service: string, namespace: string): string {
  return `${service}.${namespace}.svc`;
}

/**
 * The `dependsOn` a component was given, for its children: Pulumi does not pass a component's `dependsOn` on
 * to the resources it creates, so components forward it to the children that must wait (e.g. a custom
 * resource waiting for its CRD).
 */
export function inheritedDependsOn(opts?: pulumi.ResourceOptions): pulumi.Input<pulumi.Resource>[] {
  const d = opts?.dependsOn;
  if (!d) return [];
  if (Array.isArray(d)) return d;
  if (pulumi.Output.isInstance(d) || (d as PromiseLike<unknown>).then) {
    throw new Error('pass dependsOn to HariKube components as an array of resources (an Output or Promise of them cannot be forwarded to children)');
  }
  return [d as pulumi.Resource];
}

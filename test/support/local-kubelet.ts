/**
 * What the kubelet does before it starts a Deployment's container, done on this machine: every volume
 * mount becomes a local directory (Secret and ConfigMap volumes written as files, with the volume's
 * `defaultMode`), and the container's environment is resolved (values, Secret and ConfigMap keys, the
 * downward API's pod name, namespace and pod-template-hash). Where the Secrets and ConfigMaps come from
 * (rendered by a stack, or read from an API server) and how cluster names become local ones is the
 * caller's: `sources` and `localize`.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Secrets and ConfigMaps by name, as the pod would see them (content already localized). */
export interface PodSources {
  secret(name: string): Promise<Record<string, Buffer>> | Record<string, Buffer>;
  configMap(name: string): Promise<Record<string, string>> | Record<string, string>;
}

export interface LocalPodSpec {
  /** The Deployment (plain object); its first container is the one prepared. */
  deployment: any;
  /** Container mount path -> local directory; every mounted path needs one. Created when missing. */
  paths: Record<string, string>;
  /** The pod's name (downward API `metadata.name`). */
  podName: string;
  /** Turns an environment value of the container into its local form (paths, addresses). */
  localize: (text: string) => string;
  sources: PodSources;
}

/** The ReplicaSet's `pod-template-hash` label (set by Kubernetes, not in the Deployment): one template here. */
export const LOCAL_POD_TEMPLATE_HASH = 'local-template';

/** Writes the container's volumes to their local directories; returns its environment and its args (as declared). */
export async function preparePod(o: LocalPodSpec): Promise<{ env: Record<string, string>; args: string[] }> {
  const where = o.deployment.metadata.name;
  const pod = o.deployment.spec.template.spec;
  const container = pod.containers[0];
  for (const mount of container.volumeMounts ?? []) {
    const dir = o.paths[mount.mountPath];
    if (!dir) throw new Error(`${where}: no local directory for the mount ${mount.mountPath} (volume ${mount.name}); add it to paths`);
    mkdirSync(dir, { recursive: true });
    const volume = pod.volumes.find((v: { name: string }) => v.name === mount.name);
    if (volume?.secret) {
      for (const [key, value] of Object.entries(await o.sources.secret(volume.secret.secretName))) {
        writeFileSync(path.join(dir, key), value);
        chmodSync(path.join(dir, key), volume.secret.defaultMode ?? 0o644);
      }
    } else if (volume?.configMap) {
      for (const [key, value] of Object.entries(await o.sources.configMap(volume.configMap.name))) {
        writeFileSync(path.join(dir, key), value);
        chmodSync(path.join(dir, key), volume.configMap.defaultMode ?? 0o644);
      }
    } else if (!volume?.emptyDir && !volume?.persistentVolumeClaim) {
      throw new Error(`${where}: volume ${mount.name} is of a kind this helper does not mount yet: ${JSON.stringify(volume)}`);
    }
  }
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    const from = e.valueFrom;
    const field = from?.fieldRef?.fieldPath;
    if (e.value !== undefined) env[e.name] = o.localize(e.value);
    else if (from?.secretKeyRef) env[e.name] = keyOf(await o.sources.secret(from.secretKeyRef.name), from.secretKeyRef, `${where}: env ${e.name}`, 'Secret').toString('utf8');
    else if (from?.configMapKeyRef) env[e.name] = keyOf(await o.sources.configMap(from.configMapKeyRef.name), from.configMapKeyRef, `${where}: env ${e.name}`, 'ConfigMap');
    else if (field === 'metadata.name') env[e.name] = o.podName;
    else if (field === 'metadata.namespace') env[e.name] = o.deployment.metadata.namespace;
    else if (field === "metadata.labels['pod-template-hash']") env[e.name] = LOCAL_POD_TEMPLATE_HASH;
    else throw new Error(`${where}: env ${e.name} has a source this helper does not resolve yet: ${JSON.stringify(from)}`);
  }
  return { env, args: container.args ?? [] };
}

function keyOf<V>(data: Record<string, V>, ref: { name: string; key: string }, what: string, kind: string): V {
  const value = data[ref.key];
  if (value === undefined) throw new Error(`${what} refers to key ${ref.key} of ${kind} ${ref.name}, which has no such key`);
  return value;
}

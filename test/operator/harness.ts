/**
 * Shared setup of the operator tests: a fake API server, operators with short timings, captured logs (tests
 * assert that no endpoint secret reaches them), and readers for what the operator wrote.
 */
import { parse as parseYaml } from 'yaml';
import { configureLogging, logger } from '../../middleware/src/log.js';
import { TopologyConfigController, type OperatorOptions } from '../../middleware/src/operator/controller.js';
import { kubeClient } from '../../middleware/src/operator/kube-client.js';
import type { BackendRule } from '../../middleware/src/topology/schema.js';
import { topologyConfig } from '../../middleware/src/topology/topologyconfig.js';
import type { FakeKube } from '../support/fake-kube.js';
import {
  documentDigest,
  parseReport,
  REPORT_API_VERSION,
  reportName,
  reportObject,
  type ApplyReport,
} from '../../middleware/src/topology/apply-report.js';

/** Every log line of this test process. */
export const logLines: string[] = [];
configureLogging({ format: 'json', level: 'debug', write: (line) => logLines.push(line) });

export function startOperator(
  fake: FakeKube,
  opts: Partial<OperatorOptions> & { identity?: string } = {},
): TopologyConfigController {
  const identity = opts.identity ?? 'op-a';
  const operator = new TopologyConfigController({
    client: kubeClient(fake.kubeConfig(), { userAgent: `harikube-operator/${identity}`, requestTimeoutMs: 5000 }),
    log: logger.child({ instance: identity }),
    identity,
    leaderElection: false,
    watchTimeoutSeconds: 30,
    informerBackoffMs: { base: 50, max: 500 },
    retryBackoffMs: { base: 50, max: 1000 },
    transientRetryMs: 200,
    // the tests of merging and status say what the operator writes; those about routing turn this on
    waitForMiddleware: false,
    ...opts,
  });
  operator.start();
  return operator;
}

/** A TopologyConfig object (validated by the builder) ready for `fake.create`. */
export function tcObject(
  namespace: string,
  name: string,
  position: number,
  backends: BackendRule[],
  extra: { targetSecret?: string; endpointDecryptSecret?: string } = {},
): Record<string, any> {
  return topologyConfig({ namespace, name, position, backends, ...extra }) as unknown as Record<string, any>;
}

/** A prefix rule with a SQLite endpoint named after it. */
export function rule(name: string, prefix = name): BackendRule {
  return { name, endpoint: `sqlite://./db/${name}.db`, prefix: { prefix } };
}

/** The documents of a topology Secret, in key order: [key, backend names]. */
export function secretDocuments(secret: Record<string, any> | undefined): Array<[string, string[]]> {
  if (!secret?.data) return [];
  return Object.keys(secret.data)
    .sort()
    .map((k) => {
      const doc = parseYaml(Buffer.from(secret.data[k], 'base64').toString('utf8')) as { backends: BackendRule[] };
      return [k, doc.backends.map((b) => b.name)];
    });
}

/** Backend names of the merged topology, in order. */
export function mergedNames(secret: Record<string, any> | undefined): string[] {
  return secretDocuments(secret).flatMap(([, names]) => names);
}

export function statusOf(fake: FakeKube, namespace: string, name: string): Record<string, any> | undefined {
  return fake.get('topologyconfigs', namespace, name)?.status;
}

export function eventsFor(fake: FakeKube, name: string): Array<{ reason: string; type: string; message: string }> {
  return fake
    .list('events')
    .filter((e) => e.involvedObject?.name === name)
    .map((e) => ({ reason: e.reason, type: e.type, message: e.message }));
}

/**
 * Plays a middleware that read the target Secret as it is now: writes its apply report (topology/apply-report.ts)
 * into the fake API server, Applied, Refused (with a reason naming `rules`) or Migrating (applied, and keys of
 * `rules` still moving; no `rules`: still counting what moves).
 */
export function reportAsMiddleware(
  fake: FakeKube,
  opts: { middleware?: string; target?: string; state?: 'Applied' | 'Refused' | 'Migrating'; reason?: string; rules?: string[]; progress?: string } = {},
): ApplyReport {
  const [namespace, name] = (opts.target ?? 'harikube/topology-config').split('/') as [string, string];
  const middleware = opts.middleware ?? '4242';
  const secret = fake.get('secrets', namespace, name);
  const documents = Object.keys(secret?.data ?? {})
    .filter((k) => /\.(ya?ml|json)$/.test(k))
    .sort()
    .map((k) => documentDigest(Buffer.from(secret!.data[k], 'base64')));
  const cmName = reportName(name, middleware);
  const previous = parseReport(fake.get('configmaps', namespace, cmName));
  const at = new Date().toISOString();
  const seen = { revision: Number(secret?.metadata.resourceVersion ?? 0), documents, at };
  const state = opts.state ?? 'Applied';
  const report: ApplyReport = {
    apiVersion: REPORT_API_VERSION,
    middleware,
    secret: `${namespace}/${name}`,
    state,
    applied: state === 'Refused' ? previous?.applied : seen,
    ...(state === 'Refused' ? { refused: { ...seen, reason: opts.reason ?? 'refused', rules: opts.rules ?? [] } } : {}),
    ...(state === 'Migrating' ? { migrating: { ...seen, progress: opts.progress ?? '0 of 1 keys', ...(opts.rules ? { rules: opts.rules } : {}) } } : {}),
  };
  const obj = reportObject(report, namespace, name, at.replace(/\.\d{3}Z$/, 'Z')) as Record<string, any>;
  const existing = fake.get('configmaps', namespace, cmName);
  if (existing) fake.update({ ...existing, data: obj.data });
  else fake.create({ ...obj, metadata: { ...obj.metadata, uid: undefined, creationTimestamp: undefined } });
  return report;
}

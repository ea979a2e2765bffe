/**
 * `DatabaseOperators`: the operators that run HariKube's SQL backends, installed from their Helm charts.
 *
 * - CloudNativePG (PostgreSQL): one chart, CRDs included.
 * - mariadb-operator (MySQL-compatible): its CRD chart first, then the operator chart with CRDs disabled, as
 *   the project recommends (CRDs outlive operator upgrades and uninstalls).
 * - etcd needs no operator here: `EtcdCluster` is a plain StatefulSet.
 *
 * Dependents pass `dependsOn: operators.ready` so their custom resources are created only after the CRDs
 * and the operators' webhooks exist (Chart v4 waits for every rendered object to be ready).
 */
import * as pulumi from '@pulumi/pulumi';
import * as k8s from '@pulumi/kubernetes';
import { PART_OF } from './kube.js';

/** Where a chart comes from and which version; every field overridable. */
export interface ChartSource {
  /** Chart name in the repository. */
  chart: string;
  /** Helm repository URL. */
  repo: string;
  /** Exact chart version (pinned: a floating version would upgrade operators on an unrelated `pulumi up`). */
  version: string;
}

/** Settings of one operator installation. */
export interface OperatorInstallArgs {
  /** Install it; default true. */
  enabled?: boolean;
  /** Namespace the operator runs in (created by this component). */
  namespace?: string;
  /** Overrides of the pinned chart source. */
  chart?: Partial<ChartSource>;
  /** Extra Helm values, merged over the component's defaults (never put credentials here: values are plain state). */
  values?: Record<string, unknown>;
}

export interface DatabaseOperatorsArgs {
  /** CloudNativePG (PostgreSQL); default enabled, namespace `cnpg-system`. */
  cloudNativePg?: OperatorInstallArgs;
  /** mariadb-operator (MySQL-compatible); default enabled, namespace `mariadb-operator`. */
  mariadbOperator?: OperatorInstallArgs & {
    /** Overrides of the pinned CRD chart source (`mariadb-operator-crds`); keep its version equal to the operator's. */
    crdChart?: Partial<ChartSource>;
  };
}

/** Pinned chart versions (CloudNativePG operator 1.27, mariadb-operator 25.10). */
export const DEFAULT_CHARTS = {
  cloudNativePg: { chart: 'cloudnative-pg', repo: 'https://cloudnative-pg.github.io/charts', version: '0.26.1' },
  mariadbOperatorCrds: { chart: 'mariadb-operator-crds', repo: 'https://helm.mariadb.com/mariadb-operator', version: '25.10.2' },
  mariadbOperator: { chart: 'mariadb-operator', repo: 'https://helm.mariadb.com/mariadb-operator', version: '25.10.2' },
} as const satisfies Record<string, ChartSource>;

/** One chart to install: what `DatabaseOperators` creates, as data (unit-tested without Pulumi). */
export interface ChartPlan {
  /** Logical name of the Pulumi resource. */
  name: string;
  /** Helm release name. */
  release: string;
  namespace: string;
  source: ChartSource;
  values: Record<string, unknown>;
  /** Logical names of charts that must be installed first. */
  after: string[];
}

function merge(base: Record<string, unknown>, over: Record<string, unknown> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
        ? merge(b as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

/** The charts to install, in dependency order. */
export function planDatabaseOperatorCharts(args: DatabaseOperatorsArgs = {}): ChartPlan[] {
  const plans: ChartPlan[] = [];
  const cnpg = args.cloudNativePg ?? {};
  if (cnpg.enabled !== false) {
    plans.push({
      name: 'cloudnative-pg',
      release: 'cnpg',
      namespace: cnpg.namespace ?? 'cnpg-system',
      source: { ...DEFAULT_CHARTS.cloudNativePg, ...cnpg.chart },
      values: merge({ crds: { create: true }, monitoring: { podMonitorEnabled: false } }, cnpg.values),
      after: [],
    });
  }
  const maria = args.mariadbOperator ?? {};
  if (maria.enabled !== false) {
    const namespace = maria.namespace ?? 'mariadb-operator';
    plans.push({
      name: 'mariadb-operator-crds',
      release: 'mariadb-operator-crds',
      namespace,
      source: { ...DEFAULT_CHARTS.mariadbOperatorCrds, ...maria.crdChart },
      values: {},
      after: [],
    });
    plans.push({
      name: 'mariadb-operator',
      release: 'mariadb-operator',
      namespace,
      source: { ...DEFAULT_CHARTS.mariadbOperator, ...maria.chart },
      // The CRDs come from their own chart; the operator chart must not try to own them too.
      values: merge({ crds: { enabled: false }, metrics: { enabled: false } }, maria.values),
      after: ['mariadb-operator-crds'],
    });
  }
  return plans;
}

export class DatabaseOperators extends pulumi.ComponentResource {
  /** The installed charts; pass as `dependsOn` so custom resources wait for CRDs and webhooks. */
  public readonly ready: pulumi.Resource[];
  /** Charts by logical name (`cloudnative-pg`, `mariadb-operator-crds`, `mariadb-operator`). */
  public readonly charts: Record<string, k8s.helm.v4.Chart>;
  /** Whether CloudNativePG is installed. */
  public readonly cloudNativePg: boolean;
  /** Whether mariadb-operator is installed. */
  public readonly mariadbOperator: boolean;

  constructor(name: string, args: DatabaseOperatorsArgs = {}, opts?: pulumi.ComponentResourceOptions) {
    super('harikube:index:DatabaseOperators', name, {}, opts);
    const plans = planDatabaseOperatorCharts(args);
    const namespaces = new Map<string, k8s.core.v1.Namespace>();
    this.charts = {};
    for (const plan of plans) {
      let ns = namespaces.get(plan.namespace);
      if (!ns) {
        ns = new k8s.core.v1.Namespace(
          `${name}-${plan.namespace}`,
          { metadata: { name: plan.namespace, labels: { 'app.kubernetes.io/part-of': PART_OF } } },
          { parent: this },
        );
        namespaces.set(plan.namespace, ns);
      }
      this.charts[plan.name] = new k8s.helm.v4.Chart(
        `${name}-${plan.name}`,
        {
          chart: plan.source.chart,
          version: plan.source.version,
          repositoryOpts: { repo: plan.source.repo },
          name: plan.release,
          namespace: ns.metadata.name,
          values: plan.values,
        },
        { parent: this, dependsOn: [ns, ...plan.after.map((a) => this.charts[a]!)] },
      );
    }
    this.ready = Object.values(this.charts);
    this.cloudNativePg = 'cloudnative-pg' in this.charts;
    this.mariadbOperator = 'mariadb-operator' in this.charts;
    this.registerOutputs({ charts: Object.keys(this.charts) });
  }
}

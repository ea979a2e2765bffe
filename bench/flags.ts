/** Command line of `npm run bench -- [flags]`. */
import { parseArgs } from 'node:util';
import { COMPACTION_TARGETS, DEFAULT_COMPACTION_TARGETS, type CompactionTarget } from './compaction.js';
import { KUBE_ROW_NAMES } from './kube.js';
import { ALL_TARGETS, LAYERED_TARGETS, type TargetName } from './servers.js';

export interface BenchFlags {
  /** Exit 1 when a floor fails (default: informational, exit 0). */
  strict: boolean;
  /** Rows to profile instead of benchmarking (middleware on SQLite under --cpu-prof). */
  profile: string[];
  /** Subset of rows (default all). */
  rows: string[] | undefined;
  targets: TargetName[];
  /** Skip the memory phase. */
  skipMemory: boolean;
  /** Servers of the memory phase. */
  memoryTargets: TargetName[];
  /** Key counts of the memory phase (10k and 200k; 1M with --memory-1m). */
  memorySizes: number[];
  /** Rows run (unprofiled) on the same server before each profiled row, as the full bench runs them. */
  profileAfter: string[];
  /** The middleware target profiled (mw-sqlite unless --profile-target). */
  profileTarget: TargetName;
  /** Keep the raw .cpuprofile files (printed paths) instead of deleting them. */
  keepProfiles: boolean;
  /** Run the middleware compiled (tsc + plain node, as production does); false with --tsx. */
  compiled: boolean;
  /** Only the memory phase. */
  memoryOnly: boolean;
  /** Skip the migration phase. */
  skipMigration: boolean;
  /** Only the migration phase. */
  migrationOnly: boolean;
  /** Keys of 1 KiB moved by the migration phase. */
  migrationKeys: number;
  /** Skip the compaction phase. */
  skipCompaction: boolean;
  /** Only the compaction phase. */
  compactionOnly: boolean;
  /** Keys of 1 KiB the compaction phase overwrites, and how many times each is written. */
  compactionKeys: number;
  compactionRevisions: number;
  /** Servers of the compaction phase. */
  compactionTargets: CompactionTarget[];
  /** Skip the rows through kube-apiserver (bench/kube.ts). */
  skipKube: boolean;
  /** Only the rows through kube-apiserver. */
  kubeOnly: boolean;
  help: boolean;
}

export const USAGE = `usage: npm run bench -- [--strict] [--rows put-64,get-1,kube-watch] [--targets etcd,kine-sqlite,mw-sqlite]
                        [--skip-memory | --memory-only] [--memory-targets etcd,mw-sqlite] [--memory-1m] [--tsx]
                        [--skip-migration | --migration-only] [--migration-keys N] [--skip-kube | --kube-only]
                        [--skip-compaction | --compaction-only] [--compaction-keys N] [--compaction-revisions R]
                        [--compaction-targets etcd,mw-sqlite]
                        [--profile put-64,get-16 [--profile-target mw-routed] [--profile-after put-64] [--keep-profiles]]
  --strict          exit 1 if a target fails (default: print PASS/FAIL, exit 0)
  --rows            run only these rows (names in bench/rows.ts; watch-100-1k runs only when named; and the
                    rows through kube-apiserver: ${KUBE_ROW_NAMES.join(', ')})
  --targets         servers to drive, of ${ALL_TARGETS.join(', ')}
                    (default all that can run here; etcd, Debian's 3.4, is always included: ratios need it;
                    mw-routed: one middleware over SQLite, PostgreSQL, etcd and a child middleware, each row's
                    keys split by namespace; mw-two-layer: middleware -> child middleware -> SQLite)
  --skip-memory     skip the RSS measurement (10k and 200k keys x 1 KiB)
  --memory-only     run only that measurement
  --memory-targets  servers of the RSS measurement (default etcd,mw-sqlite; not the layered targets)
  --memory-1m       add the 1M-key step to it (minutes per server)
  --skip-migration  skip the migration row (N keys of 1 KiB moved online from SQLite to PostgreSQL, at the
                    default --migration-rate and unlimited, with put throughput while keys move)
  --migration-only  run only the migration row (no etcd needed)
  --migration-keys  N of the migration row (default 100000)
  --skip-compaction skip the compaction row (N keys of 1 KiB each written R times, then Compact(head,
                    physical) while put-16 runs: stale rows removed/s by the server's own count and clock, puts/s
                    while compacting vs idle; then checks the old revisions are gone and the newest values kept)
  --compaction-only run only the compaction row
  --compaction-keys N of the compaction row (default 5000)
  --compaction-revisions  R of the compaction row (default 10; at least 2)
  --compaction-targets  servers of the compaction row, of ${COMPACTION_TARGETS.join(', ')}
                    (default ${DEFAULT_COMPACTION_TARGETS.join(',')}; those that cannot run here are skipped)
  --skip-kube       skip the rows through kube-apiserver (on etcd and on the middleware on SQLite; they need
                    bash tools/build.sh kube-apiserver, and are skipped with a message without it)
  --kube-only       run only those rows
  --tsx             run the middleware from source under tsx (default: compiled with tsc and run under plain
                    node, as production runs it; tsx adds ~35 MiB of RSS and its own startup)
  --profile ROWS    run ROWS against the SQLite middleware under node --cpu-prof and summarise self time
  --profile-target T  profile another middleware target instead (mw-postgres, mw-routed, ...; a layered
                    target's parent and child middleware are each summarised)
  --profile-after ROWS  run ROWS first on the same server (not profiled): the state the full bench leaves
  --keep-profiles   keep the .cpuprofile files (in a temp dir; the path is printed)`;

function list(v: string | undefined): string[] | undefined {
  return v ? v.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
}

export function parseFlags(argv: string[]): BenchFlags {
  const { values } = parseArgs({
    args: argv,
    options: {
      strict: { type: 'boolean', default: false },
      profile: { type: 'string' },
      rows: { type: 'string' },
      targets: { type: 'string' },
      'skip-memory': { type: 'boolean', default: false },
      'keep-profiles': { type: 'boolean', default: false },
      'profile-after': { type: 'string' },
      'profile-target': { type: 'string' },
      tsx: { type: 'boolean', default: false },
      'memory-only': { type: 'boolean', default: false },
      'memory-targets': { type: 'string' },
      'memory-1m': { type: 'boolean', default: false },
      'skip-migration': { type: 'boolean', default: false },
      'migration-only': { type: 'boolean', default: false },
      'migration-keys': { type: 'string' },
      'skip-compaction': { type: 'boolean', default: false },
      'compaction-only': { type: 'boolean', default: false },
      'compaction-keys': { type: 'string' },
      'compaction-revisions': { type: 'string' },
      'compaction-targets': { type: 'string' },
      'skip-kube': { type: 'boolean', default: false },
      'kube-only': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  const targetList = (flag: string, v: string[]) =>
    v.map((t) => {
      if (!(ALL_TARGETS as readonly string[]).includes(t)) throw new Error(`${flag}: unknown target "${t}" (known: ${ALL_TARGETS.join(', ')})`);
      return t as TargetName;
    });
  const targets = targetList('--targets', list(values.targets) ?? [...ALL_TARGETS]);
  if (!targets.includes('etcd')) targets.unshift('etcd');
  const migrationKeys = Number(values['migration-keys'] ?? 100_000);
  if (!Number.isInteger(migrationKeys) || migrationKeys < 1) throw new Error(`--migration-keys: "${values['migration-keys']}" is not a positive whole number of keys`);
  if (values['migration-only'] && values['skip-migration']) throw new Error('--migration-only and --skip-migration exclude each other');
  if (values['kube-only'] && values['skip-kube']) throw new Error('--kube-only and --skip-kube exclude each other');
  if (values['compaction-only'] && values['skip-compaction']) throw new Error('--compaction-only and --skip-compaction exclude each other');
  const compactionKeys = Number(values['compaction-keys'] ?? 5_000);
  if (!Number.isInteger(compactionKeys) || compactionKeys < 1) throw new Error(`--compaction-keys: "${values['compaction-keys']}" is not a positive whole number of keys`);
  const compactionRevisions = Number(values['compaction-revisions'] ?? 10);
  if (!Number.isInteger(compactionRevisions) || compactionRevisions < 2) throw new Error(`--compaction-revisions: "${values['compaction-revisions']}" is not a whole number of at least 2 (one write leaves nothing to compact)`);
  const compactionTargets = (list(values['compaction-targets']) ?? [...DEFAULT_COMPACTION_TARGETS]).map((t) => {
    if (!(COMPACTION_TARGETS as readonly string[]).includes(t)) throw new Error(`--compaction-targets: "${t}" is not one of ${COMPACTION_TARGETS.join(', ')}`);
    return t as CompactionTarget;
  });
  const only = (['memory-only', 'migration-only', 'kube-only', 'compaction-only'] as const).filter((f) => values[f]);
  if (only.length > 1) throw new Error(`${only.map((f) => `--${f}`).join(' and ')} exclude each other: give one`);
  const memoryTargets = targetList('--memory-targets', list(values['memory-targets']) ?? ['etcd', 'mw-sqlite']);
  const layered = memoryTargets.filter((t) => LAYERED_TARGETS.includes(t));
  if (layered.length) throw new Error(`--memory-targets: ${layered.join(', ')} run as several processes; the memory phase measures one server's RSS (give single-server targets)`);
  const [profileTarget = 'mw-sqlite', ...extra] = targetList('--profile-target', list(values['profile-target']) ?? []);
  if (extra.length || !profileTarget.startsWith('mw-')) throw new Error(`--profile-target: give one middleware target (mw-...), not "${values['profile-target']}"`);
  return {
    strict: values.strict!,
    profile: list(values.profile) ?? [],
    profileAfter: list(values['profile-after']) ?? [],
    profileTarget,
    rows: list(values.rows),
    targets: ALL_TARGETS.filter((t) => targets.includes(t)),
    skipMemory: values['skip-memory']!,
    memoryTargets: ALL_TARGETS.filter((t) => memoryTargets.includes(t)),
    memorySizes: values['memory-1m'] ? [10_000, 200_000, 1_000_000] : [10_000, 200_000],
    keepProfiles: values['keep-profiles']!,
    compiled: !values.tsx,
    memoryOnly: values['memory-only']!,
    skipMigration: values['skip-migration']!,
    migrationOnly: values['migration-only']!,
    migrationKeys,
    skipCompaction: values['skip-compaction']!,
    compactionOnly: values['compaction-only']!,
    compactionKeys,
    compactionRevisions,
    compactionTargets: COMPACTION_TARGETS.filter((t) => compactionTargets.includes(t)),
    skipKube: values['skip-kube']!,
    kubeOnly: values['kube-only']!,
    help: values.help!,
  };
}

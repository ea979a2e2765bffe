/**
 * `npm run bench`: the middleware (SQLite, PostgreSQL, MariaDB) against etcd 3.4 and 3.6 and kine (SQLite,
 * PostgreSQL) under the same load from the Go load generator, on loopback; then kube-apiserver on etcd and on
 * the middleware (bench/kube.ts; skipped with a message when kube-apiserver is not built), the memory, the
 * migration and the compaction rows; prints tables with ratios to etcd and kine, the CPU seconds of every
 * process, PASS/FAIL per target, and writes bench/results/<ts>.json.
 * `--profile ROWS` profiles the SQLite middleware instead. Informational: exits 0 unless --strict and a
 * floor fails (or the bench itself breaks: exit 2).
 */
import { cleanupAll, cleanupOnSignals } from './cleanup.js';
import { compileMiddleware } from './compile.js';
import { parseFlags, USAGE, type BenchFlags } from './flags.js';
import { profileRow, type ProfileRun } from './profile.js';
import { formatKubeTable } from './kube.js';
import { formatCompaction, formatFloors, formatMemory, formatMigration, formatTable, timestamp, writeResults } from './report.js';
import { runSuite } from './suite.js';

/** Hard bound on the whole run, whatever hangs: cleanup, then exit. */
const WATCHDOG_MS = 60 * 60_000;

const log = (s: string) => process.stderr.write(s + '\n');

async function bench(flags: BenchFlags): Promise<number> {
  const result = await runSuite(flags, log);
  const out = result.measurements.length
    ? [
        '',
        formatTable(result.measurements),
        '',
        'x etcd = ops/s / etcd 3.4 ops/s; x kine = middleware ops/s / kine ops/s on the same database (watch rows: p99 ratios, lower is better)',
        'srv/gen cpu s = CPU seconds of the server / of the Go load generator over the measured phase; cores = cpu s per wall second',
        'batch = client writes per database transaction, commit ms = time per batch (apply + commit), from the middleware /metrics',
      ]
    : [];
  if (result.kube?.length) {
    const k = result.environment.kube as { kubeApiServer: string; etcd: string };
    out.push(
      '',
      `through kube-apiserver (${k.kubeApiServer}; etcd under the reference: ${k.etcd}; the middleware on SQLite), same run:`,
      formatKubeTable(result.kube),
      '',
      'thr x = on middleware / on etcd ops/s; p99 x = on middleware / on etcd p99 (lower is better); srv cores = kube-apiserver + its storage, e/m; cli cores = this process',
    );
  }
  out.push(
    `machine: ${String(result.environment.machine)}; load average at start ${String(result.environment.loadAverageAtStart)}, at end ${String(result.environment.loadAverageAtEnd)}`,
    ...Object.entries(result.storedKeys ?? {}).map(([t, counts]) => `${t}: bench keys per backend after the rows: ${Object.entries(counts).map(([b, n]) => `${b} ${n}`).join(', ')}`),
    ...result.skipped.map((s) => `skipped: ${s}`),
  );
  if (result.memory.length) out.push('', formatMemory(result.memory));
  if (result.migration) out.push('', formatMigration(result.migration));
  if (result.compaction) out.push('', formatCompaction(result.compaction));
  if (result.floors.length) out.push('', 'targets of issues 18 and 15 (the kube rows: issue 13; the layered targets: issue 12), same run:', formatFloors(result.floors));
  const file = await writeResults(timestamp(), result);
  out.push('', `results: ${file}`);
  process.stdout.write(out.join('\n') + '\n');
  return flags.strict && result.floors.some((f) => f.pass === false) ? 1 : 0;
}

async function profile(flags: BenchFlags): Promise<number> {
  const runs: ProfileRun[] = [];
  const compiledCli = flags.compiled ? await compileMiddleware() : undefined;
  for (const row of flags.profile) runs.push(await profileRow(row, flags.keepProfiles, (s) => process.stdout.write(s + '\n'), compiledCli, flags.profileAfter, flags.profileTarget));
  const file = await writeResults(`profile-${timestamp()}`, runs);
  process.stdout.write(`results: ${file}\n`);
  return 0;
}

async function main(): Promise<number> {
  let flags: BenchFlags;
  try {
    flags = parseFlags(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (flags.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  cleanupOnSignals();
  const watchdog = setTimeout(() => {
    log(`bench: still running after ${WATCHDOG_MS / 60_000} min; cleaning up and exiting`);
    void cleanupAll().finally(() => process.exit(2));
  }, WATCHDOG_MS);
  watchdog.unref();
  try {
    return flags.profile.length ? await profile(flags) : await bench(flags);
  } catch (err) {
    log(`bench failed: ${(err as Error).stack ?? String(err)}`);
    return 2;
  } finally {
    await cleanupAll();
    clearTimeout(watchdog);
  }
}

// exit explicitly: a stray handle (a gRPC channel a failure path missed) must not keep the bench alive
process.exit(await main());

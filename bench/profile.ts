/**
 * `--profile ROWS`: each row against a fresh middleware target (SQLite by default, `--profile-target` picks
 * another, the layered ones included) whose node processes run under `node --cpu-prof
 * --cpu-prof-dir=<tmp>`, then each process's main-thread profile summarised over the measured window only
 * (a layered target: the parent first, then its child middleware).
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { onCleanup } from './cleanup.js';
import { formatProfile, summarizeProfile, type ProfileSummary } from './cpuprofile.js';
import { measureRow, type Measurement } from './measure.js';
import { rowNamed } from './rows.js';
import type { TargetName } from './servers.js';
import { startTarget } from './targets.js';

export interface ProfileRun {
  row: string;
  measurement: Measurement;
  target: TargetName;
  /** One per node process of the target, the server kube-apiserver would talk to first. */
  processes: { pid: number; profileFile: string | undefined; summary: ProfileSummary }[];
}

/** The main thread's profile: names are CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile, main thread 0. */
async function mainThreadProfile(dir: string, pid: number, only: boolean): Promise<string | undefined> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
  const main = files.find((f) => f.split('.')[3] === String(pid) && f.split('.')[4] === '0');
  if (main) return path.join(dir, main);
  // a helper process (etcd) writes none
  if (!only) return undefined;
  // fall back to the largest profile (the main thread does nearly all the work)
  const sized = await Promise.all(files.map(async (f) => ({ f, size: (await stat(path.join(dir, f))).size })));
  sized.sort((a, b) => b.size - a.size);
  if (!sized[0]) throw new Error(`no .cpuprofile written in ${dir} (did the middleware exit cleanly?)`);
  return path.join(dir, sized[0].f);
}

export async function profileRow(
  rowName: string,
  keep: boolean,
  log: (s: string) => void,
  compiledCli?: string,
  after: string[] = [],
  target: TargetName = 'mw-sqlite',
): Promise<ProfileRun> {
  const workload = rowNamed(rowName);
  const before = after.map(rowNamed);
  const dir = await mkdtemp(path.join(os.tmpdir(), `hk-bench-prof-${rowName}-`));
  const removeDir = onCleanup(`remove ${dir}`, () => (keep ? undefined : rm(dir, { recursive: true, force: true })));
  // a generous grace: the profile is serialised at exit and only on a clean exit
  const server = await startTarget(target, { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`], stopGraceMs: 60_000, compiledCli });
  let measurement: Measurement;
  try {
    for (const w of before) {
      log(`  first ${w.name} (not profiled)`);
      await measureRow(w, server);
    }
    log(`  profiling ${rowName} on ${server.target} (pid ${server.pid})`);
    measurement = await measureRow(workload, server);
  } finally {
    await server.stop();
  }
  const processes: ProfileRun['processes'] = [];
  for (const pid of [server.pid, ...(server.helpers ?? []).map((h) => h.pid)]) {
    const file = await mainThreadProfile(dir, pid, pid === server.pid);
    if (file) processes.push({ pid, profileFile: keep ? file : undefined, summary: await summarizeProfile(file, measurement.windowUs) });
  }
  const m = measurement;
  log(
    `  ${rowName}: ${Math.round(m.opsPerSec)} ops/s, p50 ${m.p50Ms.toFixed(2)} ms, p99 ${m.p99Ms.toFixed(2)} ms under --cpu-prof; ` +
      `server CPU ${m.serverCores.toFixed(2)} cores (/proc), ${m.serverCpuUsPerOp.toFixed(0)} us/op` +
      (m.avgWriteBatch !== undefined ? `; ${m.avgWriteBatch.toFixed(1)} writes/batch, ${m.avgCommitMs!.toFixed(2)} ms/batch` : ''),
  );
  // the profiler samples wall time of the main thread: a synchronous call blocked in the kernel (fsync)
  // counts as "busy" there but not as CPU in /proc
  log(`  note: profile "busy" is main-thread wall time; compare with the server CPU above to see time blocked in synchronous calls`);
  for (const [i, p] of processes.entries()) {
    if (processes.length > 1) log(`  ${i === 0 ? 'the server' : 'a helper'} (pid ${p.pid}):`);
    log(formatProfile(rowName, p.summary));
    if (p.profileFile) log(`  profile kept: ${p.profileFile}`);
  }
  await removeDir();
  return { row: rowName, target, measurement, processes };
}

/**
 * Kubernetes' own storage-interface suite (k8s.io/apiserver/pkg/storage/testing: the cases kube-apiserver's
 * etcd3 store runs upstream), compiled by `tools/build.sh storage-suite` into a test binary that builds the
 * etcd3 store on a client pointed at the middleware. Run on each backend and on the routed topology (keys
 * split across SQLite, PostgreSQL and MariaDB by their last character). Cases that need an embedded etcd's
 * internals are skipped by name inside the harness (tools/storage-suite/suite_test.go, listed in the README);
 * this test checks that exactly those were skipped and that nothing failed.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { selectedTargets, startTarget, targetSkip, type TargetName } from '../support/targets.js';
import { requireToolDir, skipUnlessTool } from '../support/tools.js';

/** The harness's skip list (tools/storage-suite/suite_test.go `skips`), by `go test -v` name. */
const EXPECTED_SKIPS = [
  'TestGetListWithErrorAggregation',
  'TestGetListWithoutErrorAggregation',
  'TestStats/SizeBasedListCostEstimate=true',
  'TestWatch/WatchWithUnsafeDelete',
].sort();

/** Every middleware target of the contract suite (HARIKUBE_TEST_TARGETS narrows it); the reference etcd 3.4 is too old for kube 1.37's store. */
const TARGETS = (['middleware-sqlite', 'middleware-postgres', 'middleware-mariadb', 'middleware-routed'] as TargetName[]).filter((t) => selectedTargets().includes(t));

interface SuiteRun {
  code: number | null;
  output: string;
}

function runSuite(endpoint: string): Promise<SuiteRun> {
  const bin = path.join(requireToolDir('storage-suite'), 'storage-suite.test');
  return new Promise((resolve) => {
    execFile(
      bin,
      ['-test.v', '-test.count=1', '-test.timeout=15m'],
      { env: { ...process.env, HARIKUBE_STORAGE_SUITE_ENDPOINT: endpoint }, maxBuffer: 256 * 1024 * 1024, timeout: 16 * 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as any).code ?? 1) : 0, output: stdout + stderr }),
    );
  });
}

/** Names of `--- PASS|FAIL|SKIP: Name` lines (subtests included). */
function results(output: string, kind: 'PASS' | 'FAIL' | 'SKIP'): string[] {
  const re = new RegExp(`^\\s*--- ${kind}: (\\S+)`, 'gm');
  return [...output.matchAll(re)].map((m) => m[1]!);
}

const skips = new Map<TargetName, string | false>();
for (const target of TARGETS) skips.set(target, await targetSkip(target));

describe('Kubernetes storage-interface suite (etcd3 store) on the middleware', { skip: skipUnlessTool('storage-suite') }, () => {
  for (const target of TARGETS) {
    it(target, { skip: skips.get(target) }, async () => {
      // Upstream runs the progress-notify and bookmark cases on an etcd notifying every second.
      const server = await startTarget(target, { progressNotifyInterval: '1s' });
      try {
        const run = await runSuite(server.address);
        const failed = results(run.output, 'FAIL');
        const tail = run.output.split('\n').slice(-60).join('\n');
        assert.deepEqual(failed, [], `failed cases on ${target}:\n${tail}`);
        assert.equal(run.code, 0, `the suite exits 0 on ${target}:\n${tail}`);
        const passed = results(run.output, 'PASS');
        const top = passed.filter((n) => !n.includes('/'));
        // 41 top-level cases, 2 of them skipped; with upstream's table-driven sub-cases about 300 results.
        assert.ok(top.length >= 39, `the 39 runnable top-level cases passed (got ${top.length})`);
        assert.ok(passed.length >= 250, `the sub-cases ran too (got ${passed.length} passes)`);
        // Cases and their direct variants; upstream's own table-driven sub-cases may skip themselves deeper down.
        const allSkipped = results(run.output, 'SKIP');
        const skipped = allSkipped.filter((n) => n.split('/').length <= 2);
        assert.deepEqual([...new Set(skipped)].sort(), EXPECTED_SKIPS, 'exactly the listed cases were skipped');
        console.log(`${target}: ${passed.length} passed (${top.length} top-level), skipped: ${allSkipped.join(', ')}`);
      } finally {
        await server.stop();
      }
    });
  }
});

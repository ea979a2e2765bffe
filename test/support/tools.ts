/**
 * The Go-built test tools (tools/build.sh): where a tool's binaries are, or why a test must skip.
 *
 * A test that needs one is declared with `skip: skipUnlessTool(tool)`: without the tool it is skipped with a
 * message saying how to build it, unless HARIKUBE_TEST_REQUIRE_ALL=1 (CI), where it fails. The cache key is computed by
 * tools/build.sh alone (`--print`), so the two never disagree.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { REQUIRE_ALL } from './env.js';

const BUILD_SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../tools/build.sh');

const cache = new Map<string, string | undefined>();

/** The bin directory of a built tool, or undefined when it is not built (or Go is absent). */
export function toolDir(tool: string): string | undefined {
  if (!cache.has(tool)) {
    let dir: string | undefined;
    try {
      dir = execFileSync('bash', [BUILD_SCRIPT, '--print', tool], { encoding: 'utf8' }).trim() || undefined;
    } catch {
      dir = undefined;
    }
    cache.set(tool, dir);
  }
  return cache.get(tool);
}

/**
 * For `test(name, { skip: skipUnlessTool('kube-apiserver') }, ...)`: false when the tool is built, a message
 * saying how to build it when not. Throws under HARIKUBE_TEST_REQUIRE_ALL=1 so CI fails instead of skipping.
 */
export function skipUnlessTool(tool: string): string | false {
  if (toolDir(tool)) return false;
  const why = `${tool} is not built: run tools/build.sh ${tool} (needs Go 1.26 and the Go module proxy)`;
  if (REQUIRE_ALL) throw new Error(`HARIKUBE_TEST_REQUIRE_ALL=1 but ${why}`);
  return why;
}

/** The bin directory of a built tool; throws when it is not built (call after skipUnlessTool). */
export function requireToolDir(tool: string): string {
  const dir = toolDir(tool);
  if (!dir) throw new Error(`${tool} is not built: run tools/build.sh ${tool}`);
  return dir;
}

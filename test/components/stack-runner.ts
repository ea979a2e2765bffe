/**
 * Runs a stack program under Pulumi mocks with the configuration the engine would give it: the stack file's
 * `config:` plus the defaults declared in the project file.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { setupMocks, type Harness, type MockOptions } from './harness.js';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Stack config as the engine passes it: stack file values over project defaults, keys `project:key`. */
export function stackConfig(projectFile: string, stackFile: string): Record<string, unknown> {
  const project = parseYaml(readFileSync(projectFile, 'utf8')) as { name: string; config?: Record<string, { default?: unknown }> };
  const stack = parseYaml(readFileSync(stackFile, 'utf8')) as { config?: Record<string, unknown> };
  const config: Record<string, unknown> = {};
  for (const [key, decl] of Object.entries(project.config ?? {})) {
    if (decl && typeof decl === 'object' && 'default' in decl) config[key.includes(':') ? key : `${project.name}:${key}`] = decl.default;
  }
  for (const [key, value] of Object.entries(stack.config ?? {})) {
    if (value && typeof value === 'object' && 'secure' in (value as object)) throw new Error(`${stackFile}: ${key} is encrypted; tests cannot decrypt it`);
    config[key] = value;
  }
  return config;
}

export interface StackRun {
  h: Harness;
  exports: Record<string, unknown>;
}

/** Sets up mocks with the stack's config and imports the program; resolves once every resource is registered. */
export async function runStack(opts: { projectFile: string; stackFile: string; program: string; stack: string } & Pick<MockOptions, 'stackOutputs'>): Promise<StackRun> {
  const project = (parseYaml(readFileSync(opts.projectFile, 'utf8')) as { name: string }).name;
  const h = await setupMocks({ project, stack: opts.stack, config: stackConfig(opts.projectFile, opts.stackFile), stackOutputs: opts.stackOutputs });
  const exports = (await import(pathToFileURL(opts.program).href)) as Record<string, unknown>;
  await h.settle();
  return { h, exports };
}

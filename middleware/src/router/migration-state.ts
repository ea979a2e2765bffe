/**
 * The durable state of online migrations (meta `migrations` in the default backend): which backends may
 * still hold keys that the topology in effect routes elsewhere. It is written in the same transaction as the
 * topology that made them sources, and rewritten when the mover has emptied one, so a restart resumes
 * exactly where the data is.
 *
 *   {"sources":[{"route":"team-a","since":1200},{"rule":{...BackendRule},"since":1300}]}
 *
 * A source is either a backend of the topology in effect (`route`: its rule name, "" for the default
 * backend) or one no rule routes to any more (`rule`: the rule it had, to reopen it after a restart).
 */
import { META } from '../backends/meta.js';
import type { BackendRule } from '../topology/schema.js';

export interface SourceRecord {
  /** Route name of a backend the topology still has ("" = the default backend). */
  route?: string;
  /** The rule of a backend the topology no longer has (it keeps its data until it is moved out). */
  rule?: BackendRule;
  /** Global revision at which it became a source (compaction of migrating data stays below it). */
  since: number;
}

export interface MigrationState {
  sources: SourceRecord[];
}

export function encodeMigrationState(state: MigrationState): Buffer {
  return Buffer.from(JSON.stringify({ sources: state.sources }));
}

export function decodeMigrationState(value: Buffer | undefined, where: string): MigrationState {
  if (!value || value.length === 0) return { sources: [] };
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString('utf8'));
  } catch (err) {
    throw new Error(`${where}: the migration state (meta "${META.migrations}") is not JSON: ${(err as Error).message}`);
  }
  const sources = (parsed as { sources?: unknown }).sources;
  if (!Array.isArray(sources)) throw new Error(`${where}: the migration state (meta "${META.migrations}") has no "sources" list`);
  for (const [i, s] of sources.entries()) {
    const r = s as SourceRecord;
    const named = typeof r.route === 'string' || (typeof r.rule === 'object' && r.rule !== null && typeof r.rule.endpoint === 'string');
    if (!named || typeof r.since !== 'number') throw new Error(`${where}: the migration state (meta "${META.migrations}") sources[${i}] is damaged: ${JSON.stringify(s)}`);
  }
  return { sources: sources as SourceRecord[] };
}

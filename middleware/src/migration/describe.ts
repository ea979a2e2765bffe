/**
 * Words for a migration's status, shared by `harikube migrate status` and the apply report the operator turns
 * into a TopologyConfig's status, so both say the same thing the same way. Pure functions.
 */
import { formatDuration } from '../topology/duration.js';
import type { MigrationStatus, SourceStatus } from './status.js';

/** `the default backend` or `rule "shop"`. */
export function routeLabel(route: string): string {
  return route === '' ? 'the default backend' : `rule "${route}"`;
}

/** What the source is: its route, or the database a removed (or repointed) rule had. */
export function sourceLabel(s: SourceStatus): string {
  if (!s.source.startsWith('retired: ')) return routeLabel(s.source);
  return s.rule !== undefined ? `the old database of rule "${s.rule}"` : 'a removed backend';
}

/** Seconds as a Go-style duration, as the flags take them: `16s`, `3m5s`, `1h2m5s`. */
export function formatSeconds(seconds: number): string {
  return formatDuration(Math.max(0, Math.round(seconds)) * 1000);
}

/** Whole percent of the keys moved (100 once done; 0 while nothing is counted). */
export function percentDone(s: SourceStatus): number {
  if (s.phase === 'done') return 100;
  if (s.keysTotal <= 0) return 0;
  return Math.min(100, Math.floor((s.keysMoved / s.keysTotal) * 100));
}

/** ` into rule "shop" and the default backend`, or '' before the first count. */
function into(s: SourceStatus): string {
  const targets = s.targets ?? [];
  if (targets.length === 0) return '';
  const labels = targets.map(routeLabel);
  return ` into ${labels.length === 1 ? labels[0] : `${labels.slice(0, -1).join(', ')} and ${labels.at(-1)}`}`;
}

/**
 * One sentence per source: `1200 of 5000 keys moved out of the default backend into rule "shop" (moving,
 * 250 keys/s, about 16s left)`. Names rules and phases only, never an endpoint.
 */
export function sourceProgress(s: SourceStatus): string {
  const where = `out of ${sourceLabel(s)}${into(s)}`;
  if (s.phase === 'done') return `${s.keysMoved} keys moved ${where} (done)`;
  if (s.phase === 'counting' && s.keysTotal === 0) return `counting the keys to move ${where}`;
  const details: string[] = [s.phase];
  if (s.keysPerSecond > 0 && s.phase === 'moving') details.push(`${s.keysPerSecond} keys/s`);
  if (s.etaSeconds !== undefined && s.phase === 'moving') details.push(`about ${formatSeconds(s.etaSeconds)} left`);
  if (s.errors > 0) details.push(`${s.errors} failed step${s.errors === 1 ? '' : 's'}, retrying`);
  return `${s.keysMoved} of ${s.keysTotal} keys moved ${where} (${details.join(', ')})`;
}

/** Sources that still hold keys to move. */
export function activeSources(status: MigrationStatus): SourceStatus[] {
  return status.sources.filter((s) => s.phase !== 'done');
}

/** The progress of every active source, in one line. */
export function migrationSummary(status: MigrationStatus): string {
  return activeSources(status).map(sourceProgress).join('; ');
}

/**
 * Names of the rules whose keys are moving (a source's rule, the rule a retired source had, and the rules
 * keys move into): the TopologyConfigs declaring them are Migrating. Undefined while a source is not counted
 * yet (where its keys go is not known: every rule may be involved).
 */
export function rulesInvolved(status: MigrationStatus): string[] | undefined {
  const names = new Set<string>();
  for (const s of activeSources(status)) {
    if (s.targets === undefined) return undefined;
    if (s.source !== '' && !s.source.startsWith('retired: ')) names.add(s.source);
    if (s.rule !== undefined) names.add(s.rule);
    for (const t of s.targets ?? []) if (t !== '') names.add(t);
  }
  return [...names].sort();
}

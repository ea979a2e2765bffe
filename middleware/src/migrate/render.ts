/**
 * How `harikube migrate status` shows a migration: on a terminal, a progress bar per source that the command
 * redraws in place; elsewhere (logs, CI), plain lines that read well one after another. Pure functions.
 */
import { formatSeconds, percentDone, routeLabel, sourceLabel } from '../migration/describe.js';
import type { MigrationStatus, SourceStatus } from '../migration/status.js';

const BAR_WIDTH = 30;

function rateText(status: MigrationStatus): string {
  const limit = status.rateLimit > 0 ? `${status.rateLimit} keys/s` : 'none';
  return `rate limit ${limit} (${status.rateLimitFrom === 'topology' ? 'topology migration.keysPerSecond' : '--migration-rate'})`;
}

/** `the default backend (sqlite:///x/state.db) -> rule "shop"` */
function route(s: SourceStatus): string {
  const targets = s.targets?.length ? s.targets.map(routeLabel).join(', ') : s.phase === 'done' ? 'its owners' : '(counting)';
  return `${sourceLabel(s)} (${s.description}) -> ${targets}`;
}

function isRetired(s: SourceStatus): boolean {
  return s.source.startsWith('retired: ');
}

/** What a finished source means for its database. */
function doneText(s: SourceStatus): string {
  return isRetired(s)
    ? `emptied: no rule routes to this database any more and it holds no keys; it is safe to delete`
    : 'done: every key it held for other backends has moved';
}

function figures(s: SourceStatus): string[] {
  const out = [`${s.keysMoved}/${s.keysTotal} keys`, s.phase];
  if (s.keysPerSecond > 0 && s.phase === 'moving') out.push(`${s.keysPerSecond} keys/s`);
  if (s.etaSeconds !== undefined && s.phase === 'moving') out.push(`ETA ${formatSeconds(s.etaSeconds)}`);
  return out;
}

function errorText(s: SourceStatus): string | undefined {
  if (s.errors === 0) return undefined;
  return `${s.errors} failed step${s.errors === 1 ? '' : 's'} (retried)${s.lastError ? `; last: ${s.lastError}` : ''}`;
}

function bar(percent: number): string {
  const filled = Math.round((percent / 100) * BAR_WIDTH);
  return `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${String(percent).padStart(3)}%`;
}

function headline(status: MigrationStatus): string {
  const active = status.sources.filter((s) => s.phase !== 'done').length;
  if (!status.active) return 'No migration in progress: no backend holds keys that the topology routes elsewhere.';
  return `Migration in progress: ${active === 1 ? '1 source still holds' : `${active} sources still hold`} keys routed elsewhere; ${rateText(status)}.`;
}

const FINISHED = 'Finished since the middleware started:';

/** The lines of one terminal frame (redrawn in place), cut to `width` columns. */
export function terminalFrame(status: MigrationStatus, width: number): string[] {
  const lines = [headline(status)];
  const active = status.sources.filter((s) => s.phase !== 'done');
  const done = status.sources.filter((s) => s.phase === 'done');
  for (const s of active) {
    lines.push(`  ${route(s)}`, `    ${bar(percentDone(s))}  ${figures(s).join('  ')}`);
    const err = errorText(s);
    if (err) lines.push(`    ${err}`);
  }
  if (done.length) lines.push(FINISHED);
  for (const s of done) lines.push(`  ${route(s)}`, `    ${bar(100)}  ${s.keysMoved} keys  ${doneText(s)}`);
  return lines.map((l) => (l.length > width ? `${l.slice(0, Math.max(1, width - 1))}…` : l));
}

/** Plain lines for logs: one per source, each complete on its own. `at` prefixes them when following. */
export function plainLines(status: MigrationStatus, at?: Date): string[] {
  const prefix = at ? `${at.toISOString()} ` : '';
  const lines = [`${prefix}${headline(status)}`];
  for (const s of status.sources.filter((x) => x.phase !== 'done')) {
    const parts = [`${s.phase}`, `${s.keysMoved} of ${s.keysTotal} keys (${percentDone(s)}%)`];
    if (s.keysPerSecond > 0 && s.phase === 'moving') parts.push(`${s.keysPerSecond} keys/s`);
    if (s.etaSeconds !== undefined && s.phase === 'moving') parts.push(`ETA ${formatSeconds(s.etaSeconds)}`);
    const err = errorText(s);
    if (err) parts.push(err);
    lines.push(`${prefix}  ${route(s)}: ${parts.join(', ')}`);
  }
  const done = status.sources.filter((x) => x.phase === 'done');
  if (done.length) lines.push(`${prefix}${FINISHED}`);
  for (const s of done) lines.push(`${prefix}  ${route(s)}: ${s.keysMoved} keys moved; ${doneText(s)}`);
  return lines;
}

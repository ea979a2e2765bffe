/**
 * When a deleted TopologyConfig may let go: its finalizer is what keeps `pulumi destroy` (or any client
 * waiting for the delete) from dropping the team's database next. Taking the rules out of the Secret is not
 * enough: until every middleware reading the Secret has applied the content without them, keys still go to
 * that database, and once it has, the keys stored there are moved out online (migration) for a while. The
 * finalizer is held until both are over, so the database is empty of live keys when the delete completes.
 */
import { sameDocuments, type ApplyReport } from '../topology/apply-report.js';
import type { StatusReport } from './status.js';

/**
 * Why a deleted resource whose rules are `rules` must keep its finalizer, as a status, or undefined when it
 * may be released. `current` is the digest of each document the Secret holds now (without its rules).
 * Without reports (no middleware reports on this Secret, or the operator does not wait for them) there is
 * nothing to wait for: released at once, as before reports existed.
 */
export function deletionHold(
  rules: readonly string[],
  current: readonly string[],
  reports: readonly ApplyReport[] | undefined,
): StatusReport | undefined {
  if (!reports?.length) return undefined;
  const unseen = reports.filter((r) => !sameDocuments(r.applied?.documents ?? [], current));
  if (unseen.length) {
    const refused = unseen.find((r) => r.refused && sameDocuments(r.refused.documents, current));
    return {
      deployStatus: 'Pending',
      conditionReason: 'WaitingToRemove',
      message:
        `being deleted: its rules are out of the Secret; waiting for middleware ${unseen.map((r) => r.middleware).join(', ')} to apply it` +
        (refused ? ` (middleware ${refused.middleware} refused it: ${refused.refused!.reason})` : '') +
        '; the finalizer stays until then, so the database is not dropped while keys still go to it',
    };
  }
  const moving = reports.find((r) => r.migrating && (r.migrating.rules === undefined || r.migrating.rules.some((n) => rules.includes(n))));
  if (moving) {
    return {
      deployStatus: 'Migrating',
      conditionReason: 'MovingKeysOut',
      message:
        `being deleted: middleware ${moving.middleware} is moving the keys of its rules out of their database: ${moving.migrating!.progress}; ` +
        'the finalizer stays until they are moved, so the database is not dropped with live keys in it',
    };
  }
  return undefined;
}

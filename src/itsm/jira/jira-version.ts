/**
 * The ticket version of a Jira delivery, which must never go backwards for later changes of the issue.
 *
 * What is proven monotonic: the issue's `fields.updated` is set by Jira on every change to the issue (status,
 * fields, comments), with millisecond precision, and never moves backwards for one issue; a later change always
 * carries a later or equal `updated`. The webhook's own `timestamp` is when the event was sent (a retry ~30 minutes
 * later carries a new one), so it orders nothing. Changelog ids come from one increasing sequence per site, so within
 * one millisecond they order the changes of an issue; an event without a changelog (created, commented) has none.
 *
 * Packed into one integer: updated-ms × 1024 + (changelog id mod 1024), below 2^53 until the year 2248. The tie-break
 * only decides between changes in the same millisecond; a pair whose changelog ids straddle a multiple of 1024 in
 * that millisecond would order wrongly, which needs two saves of one issue in one millisecond.
 */
export const TIE_BREAK_RANGE = 1024;

export function jiraVersion(updatedMs: number, changelogId: string | undefined): number {
  if (!Number.isSafeInteger(updatedMs) || updatedMs < 0) throw new Error(`not an epoch time in ms: ${updatedMs}`);
  const tie = changelogId && /^\d{1,18}$/.test(changelogId) ? Number(BigInt(changelogId) % BigInt(TIE_BREAK_RANGE)) : 0;
  return updatedMs * TIE_BREAK_RANGE + tie;
}

/** Jira's date-time: 2026-11-30T10:39:07.123+0000 (offset without a colon), or ISO 8601 with one. */
const JIRA_DATE_TIME = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?)(Z|[+-]\d{2}:?\d{2})$/;

export function parseJiraDateTime(text: string): number | undefined {
  const m = JIRA_DATE_TIME.exec(text);
  if (!m) return undefined;
  const zone = m[2] === 'Z' ? 'Z' : `${(m[2] as string).slice(0, 3)}:${(m[2] as string).slice(-2)}`;
  const ms = Date.parse(`${m[1]}${zone}`);
  return Number.isNaN(ms) ? undefined : ms;
}

/** Formats as Jira does: 2026-11-30T10:39:07.123+0000. */
export function formatJiraDateTime(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '+0000');
}

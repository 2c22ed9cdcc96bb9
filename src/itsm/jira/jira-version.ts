/**
 * The ticket version of a Jira delivery: the version of the issue as the gateway read it back from Jira, which must
 * never go backwards for later states of the issue.
 *
 * Jira sets the issue's `fields.updated` on every change (status, fields, comments, approvals) with millisecond
 * precision, and it never moves backwards for one issue. The webhook's `timestamp` is when the event was sent (a
 * retry ~30 minutes later carries a new one), so it orders nothing; nor does the event's changelog id once two saves
 * share a millisecond (an earlier scheme packed `changelog id mod 1024` beside the time, and two saves in one
 * millisecond straddling a multiple of 1024 ordered backwards: the later status was dropped as stale).
 *
 * So a delivery carries the issue as read after the event (`JiraRuntime.currentIssue`), and the read is taken only
 * once its `updated` millisecond is over: it then holds every save of that millisecond, and its version is the last
 * one the millisecond can have, `(updated + 1) × 1024 − 1`. A later save has a later `updated` and a larger version;
 * two deliveries that read the same state carry the same version, which the delivery table takes as one. The factor
 * 1024 keeps versions comparable with those recorded under the earlier scheme; below 2^53 until the year 2248.
 */
export const VERSIONS_PER_MS = 1024;

export function jiraVersion(updatedMs: number): number {
  if (!Number.isSafeInteger(updatedMs) || updatedMs < 0) throw new Error(`not an epoch time in ms: ${updatedMs}`);
  return (updatedMs + 1) * VERSIONS_PER_MS - 1;
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

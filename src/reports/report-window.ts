/** The span of time a report covers: given as `since`/`until`, or the last week up to now. */
export interface ReportWindow {
  since: Date;
  until: Date;
}

export const DEFAULT_WINDOW_MS = 7 * 86_400_000;
/** A report reads every row of its window: a year at most. */
export const MAX_WINDOW_MS = 366 * 86_400_000;

export function reportWindow(given: { since?: string; until?: string }, now = new Date()): ReportWindow {
  const until = given.until ? new Date(given.until) : now;
  const since = given.since ? new Date(given.since) : new Date(until.getTime() - DEFAULT_WINDOW_MS);
  return { since, until };
}

import type { temporal } from '@temporalio/proto';

/**
 * A workflow history as searchable text: every payload decoded. In a fetched history payload bytes are Uint8Arrays
 * (JSON.stringify shows them as numbered bytes), and in a history's JSON export they are Base64 strings: searching
 * either undecoded finds nothing, so a secret in a payload would go unnoticed. Each test that searches one also looks
 * for something that must be there (a positive control), so the search is known to look where the payloads are.
 */
export function historyText(history: unknown): string {
  const out: string[] = [];
  const seen = new Set<unknown>();
  const walk = (v: unknown): void => {
    if (v instanceof Uint8Array) out.push(Buffer.from(v).toString('utf8'));
    else if (typeof v === 'string') {
      out.push(v);
      if (v.length >= 8 && v.length % 4 === 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(v)) out.push(Buffer.from(v, 'base64').toString('utf8'));
    } else if (v && typeof v === 'object' && !seen.has(v)) {
      seen.add(v);
      Object.values(v).forEach(walk);
    }
  };
  walk(history);
  return out.join('\n');
}

/**
 * Each scheduling of `activity` in a history's events, in order, as the attempt its last start was (undefined while
 * none started): `[2]` is one scheduling, done by its second attempt after the first died with its worker.
 */
export function attemptsOf(events: ReadonlyArray<temporal.api.history.v1.IHistoryEvent>, activity: string): Array<number | undefined> {
  return events
    .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === activity)
    .map((s) => events.filter((e) => Number(e.activityTaskStartedEventAttributes?.scheduledEventId) === Number(s.eventId)).at(-1)?.activityTaskStartedEventAttributes?.attempt ?? undefined);
}

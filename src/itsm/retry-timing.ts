/**
 * When to try an ITSM system again: the server's own word first (`Retry-After`, then `X-RateLimit-Reset`), else
 * exponential back-off with jitter. Shared by every ticket source's client (ServiceNow, Jira) and by the ticket
 * outbox's delivery, so a 429 from either system is honoured the same way.
 */

/** Longest wait a header may ask for: a larger (or garbled far-future) value is clamped, never trusted blindly. */
export const MAX_SERVER_DELAY_MS = 24 * 3_600_000;

const DIGITS = /^\d{1,12}$/;
/** ISO-8601 date-time with a zone (Jira: `2025-06-02T22:00:00.000Z`, `2025-06-02T22:00Z`, `…+02:00`). */
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;
/** IMF-fixdate and the two obsolete HTTP-date forms RFC 9110 still asks recipients to accept. */
const HTTP_DATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)(day|sday|nesday|rsday|urday)?, ?\d{1,2}[ -][A-Z][a-z]{2}[ -]\d{2,4} \d{2}:\d{2}:\d{2} GMT$|^(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/;

function clamp(ms: number): number {
  return Math.min(MAX_SERVER_DELAY_MS, Math.max(0, Math.round(ms)));
}

/**
 * `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. Milliseconds from `nowMs`, 0 for a date in the
 * past, undefined for anything else (garbage is ignored, so the caller falls back to its own back-off).
 */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  if (DIGITS.test(text)) return clamp(Number(text) * 1000);
  if (!HTTP_DATE.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : clamp(at - nowMs);
}

/**
 * `X-RateLimit-Reset`, in either vendor's form: UNIX epoch seconds (ServiceNow) or an ISO-8601 date-time (Jira).
 * Milliseconds until the reset from `nowMs` (0 when it has passed), undefined for anything else.
 */
export function parseRateLimitReset(value: string | undefined, nowMs: number): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  if (DIGITS.test(text)) return clamp(Number(text) * 1000 - nowMs);
  if (!ISO_DATE_TIME.test(text)) return undefined;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : clamp(at - nowMs);
}

export type HeaderLookup = (name: string) => string | undefined;

/** The server's requested delay: `Retry-After` first, `X-RateLimit-Reset` as the fallback; undefined if neither says. */
export function serverRetryDelay(header: HeaderLookup, nowMs: number): number | undefined {
  return parseRetryAfter(header('retry-after'), nowMs) ?? parseRateLimitReset(header('x-ratelimit-reset'), nowMs);
}

export interface BackoffPolicy {
  /** Delay before the second attempt (attempt 1 failed), before jitter. */
  initialMs: number;
  /** Ceiling of the delay before jitter, however many attempts failed. */
  maxMs: number;
}

/** Production default: a second after the first failure, doubling to five minutes (an hour's outage ≈ 20 attempts). */
export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 300_000 };

/**
 * Exponential back-off with "equal jitter": the ceiling doubles with each failed attempt up to `maxMs`, and the delay
 * is drawn from [ceiling/2, ceiling], so callers that failed together spread out but none retries at once.
 */
export function backoffDelay(failedAttempts: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const n = Math.max(1, Math.floor(failedAttempts));
  const ceiling = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(n - 1, 40));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/**
 * The wait before the next attempt: what the server asked for (plus up to 10% or 1 s of jitter, so that callers
 * throttled together do not all come back in the same instant), else the back-off.
 */
export function nextRetryDelay(failedAttempts: number, serverDelayMs: number | undefined, policy: BackoffPolicy, random: () => number = Math.random): number {
  if (serverDelayMs === undefined) return backoffDelay(failedAttempts, policy, random);
  const spread = Math.min(1_000, serverDelayMs * 0.1);
  return clamp(serverDelayMs + random() * spread);
}

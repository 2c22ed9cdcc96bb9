import { MAX_SERVER_DELAY_MS, backoffDelay, nextRetryDelay, parseRateLimitReset, parseRetryAfter, serverRetryDelay } from '../src/itsm/retry-timing';

const NOW = Date.parse('2026-11-30T10:00:00.000Z');

describe('Retry-After', () => {
  it('in delay-seconds is that many seconds', () => {
    expect(parseRetryAfter('120', NOW)).toBe(120_000);
    expect(parseRetryAfter(' 0 ', NOW)).toBe(0);
  });

  it('as an HTTP-date is the time until then (IMF-fixdate and the obsolete RFC 850 and asctime forms), 0 when it has passed', () => {
    expect(parseRetryAfter('Mon, 30 Nov 2026 10:01:30 GMT', NOW)).toBe(90_000);
    expect(parseRetryAfter('Monday, 30-Nov-26 10:00:10 GMT', NOW)).toBe(10_000);
    expect(parseRetryAfter('Mon Nov 30 10:00:05 2026', NOW)).toBe(5_000);
    expect(parseRetryAfter('Mon, 30 Nov 2026 09:00:00 GMT', NOW)).toBe(0);
  });

  it('garbage, negatives, fractions and other date forms are ignored (undefined), so the caller backs off on its own terms', () => {
    for (const bad of [undefined, '', 'soon', '-5', '1.5', '5s', '0x10', '2026-11-30T10:01:00Z', 'Mon, 99 Nov 2026 10:01:30 GMT', '1e3']) {
      expect(parseRetryAfter(bad, NOW)).toBeUndefined();
    }
  });

  it('asking for more than a day is clamped to a day', () => {
    expect(parseRetryAfter('999999999', NOW)).toBe(MAX_SERVER_DELAY_MS);
  });
});

describe('X-RateLimit-Reset', () => {
  it('in ServiceNow form (UNIX epoch seconds) is the time until that second', () => {
    expect(parseRateLimitReset(String(NOW / 1000 + 42), NOW)).toBe(42_000);
    expect(parseRateLimitReset(String(NOW / 1000 - 42), NOW)).toBe(0);
  });

  it('in Jira form (ISO-8601) is the time until then, whatever the zone notation', () => {
    expect(parseRateLimitReset('2026-11-30T10:00:30.000Z', NOW)).toBe(30_000);
    expect(parseRateLimitReset('2026-11-30T10:01Z', NOW)).toBe(60_000);
    expect(parseRateLimitReset('2026-11-30T11:00:45+01:00', NOW)).toBe(45_000);
    expect(parseRateLimitReset('2026-11-30T05:00:20-0500', NOW)).toBe(20_000);
  });

  it('garbage and an ISO date without a zone are ignored (undefined)', () => {
    for (const bad of [undefined, '', 'tomorrow', '2026-11-30T10:00:30', '2026-11-30', '-1', '12.5', '2026-13-45T99:00:00Z']) {
      expect(parseRateLimitReset(bad, NOW)).toBeUndefined();
    }
  });
});

describe("the server's requested delay", () => {
  const headers = (h: Record<string, string>) => (name: string) => h[name];

  it('takes Retry-After over X-RateLimit-Reset, and X-RateLimit-Reset when Retry-After is absent or garbage', () => {
    expect(serverRetryDelay(headers({ 'retry-after': '3', 'x-ratelimit-reset': String(NOW / 1000 + 60) }), NOW)).toBe(3_000);
    expect(serverRetryDelay(headers({ 'x-ratelimit-reset': String(NOW / 1000 + 60) }), NOW)).toBe(60_000);
    expect(serverRetryDelay(headers({ 'retry-after': 'later', 'x-ratelimit-reset': '2026-11-30T10:00:07Z' }), NOW)).toBe(7_000);
    expect(serverRetryDelay(headers({}), NOW)).toBeUndefined();
  });
});

describe('back-off with jitter', () => {
  const policy = { initialMs: 1_000, maxMs: 60_000 };

  it('doubles per failed attempt and stays within [ceiling/2, ceiling] for any draw', () => {
    for (let attempt = 1; attempt <= 12; attempt++) {
      const ceiling = Math.min(policy.maxMs, policy.initialMs * 2 ** (attempt - 1));
      expect(backoffDelay(attempt, policy, () => 0)).toBe(ceiling / 2);
      expect(backoffDelay(attempt, policy, () => 0.999999)).toBeLessThanOrEqual(ceiling);
      expect(backoffDelay(attempt, policy, () => 0.999999)).toBeGreaterThan(ceiling * 0.99);
    }
  });

  it('never exceeds the ceiling however many attempts failed, and real draws spread between the bounds', () => {
    const draws = Array.from({ length: 500 }, () => backoffDelay(1_000, policy));
    expect(Math.max(...draws)).toBeLessThanOrEqual(policy.maxMs);
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(policy.maxMs / 2);
    expect(new Set(draws).size).toBeGreaterThan(100);
  });

  it("honours the server's delay (plus at most 10% or 1 s of jitter) instead of the back-off", () => {
    expect(nextRetryDelay(1, 30_000, policy, () => 0)).toBe(30_000);
    expect(nextRetryDelay(1, 30_000, policy, () => 0.999999)).toBeLessThanOrEqual(31_000);
    expect(nextRetryDelay(1, 2_000, policy, () => 0.999999)).toBeLessThanOrEqual(2_200);
    expect(nextRetryDelay(1, 0, policy, () => 0.5)).toBe(0);
    expect(nextRetryDelay(6, undefined, policy, () => 0)).toBe(16_000);
  });
});

import { createServiceNowSimulator, freshNumberBase } from '../src/itsm/servicenow/servicenow-simulator';
import { CHANGE_NUMBER } from '../src/itsm/servicenow/servicenow-change';

/**
 * The simulator keeps its records in memory: `npm start` numbers each run's changes from a base that grows with the
 * clock, so a restarted simulator never hands out a number an earlier run used (whose workflow may have finished).
 */
describe('ServiceNow simulator numbering across restarts', () => {
  const sim = (numberBase?: number) => createServiceNowSimulator({ username: 'u', password: 'p', ...(numberBase !== undefined ? { numberBase } : {}) });

  it('a restarted simulator with a fresh base numbers above everything an earlier run handed out', () => {
    const started = Date.now();
    const first = sim(freshNumberBase(started));
    const earlier = Array.from({ length: 50 }, () => String(first.createChange({}).number));
    // The restart a moment later: even 50 changes in the first run do not reach the next base after 50 ms.
    const second = sim(freshNumberBase(started + 50));
    const later = String(second.createChange({}).number);
    const digits = (n: string) => Number(n.slice(3));
    expect(Math.max(...earlier.map(digits))).toBeLessThan(digits(later));
    for (const n of [...earlier, later]) expect(n).toMatch(CHANGE_NUMBER);
  });

  it('without a base the numbering starts at CHG0030001, as the tests and examples expect', () => {
    expect(sim().createChange({}).number).toBe('CHG0030001');
    expect(freshNumberBase(Date.UTC(2025, 0, 1))).toBe(30001);
  });
});

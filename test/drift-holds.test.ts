import type { ClosureView } from '../src/change/closure';
import { endedHold, holdEnds } from '../src/drift/drift';

/** Whether a missing grant is restored: only while the change that holds it still does, read from its closure view. */
describe('drift: a missing grant is restored only while a change still holds it', () => {
  const now = Date.parse('2026-11-30T12:00:00Z');
  const view = (phase: ClosureView['phase'], cleanup: ClosureView['steps'][number]['cleanup']): ClosureView => ({
    ticket: 'CHG1', allowed: false, reasons: [], ticketState: '-1', phase,
    steps: [{ stepId: 's1', kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: 'app' }, status: 'verified', ...(cleanup ? { cleanup } : {}) }],
  });

  it('holds while the expiry is not due, for standing access even after the change closed, and for a grant with no end', () => {
    expect(endedHold(view('implement', { status: 'scheduled', expiresAt: '2026-11-30T13:00:00Z' }), 'mysql-local', 'app', now)).toBeUndefined();
    expect(endedHold(view('closed', { status: 'standing', owner: 'jdoe' }), 'mysql-local', 'app', now)).toBeUndefined();
    expect(endedHold(view('implement', { status: 'none' }), 'mysql-local', 'app', now)).toBeUndefined();
    expect(holdEnds(view('implement', { status: 'scheduled', expiresAt: '2026-11-30T13:00:00Z' }), 'mysql-local', 'app')).toBe(Date.parse('2026-11-30T13:00:00Z'));
    expect(holdEnds(view('implement', { status: 'standing', owner: 'jdoe' }), 'mysql-local', 'app')).toBeUndefined();
  });

  it('has ended once the expiry is due, running or done, when the change has ended, or when nothing is known of it', () => {
    expect(endedHold(view('implement', { status: 'scheduled', expiresAt: '2026-11-30T11:59:59Z' }), 'mysql-local', 'app', now)).toBe('its grant has expired or is being taken back');
    expect(endedHold(view('implement', { status: 'running' }), 'mysql-local', 'app', now)).toBe('its grant has expired or is being taken back');
    expect(endedHold(view('implement', { status: 'verified' }), 'mysql-local', 'app', now)).toBe('its grant has expired or is being taken back');
    expect(endedHold(view('cancelled', { status: 'scheduled', expiresAt: '2026-11-30T13:00:00Z' }), 'mysql-local', 'app', now)).toBe('its change is cancelled');
    expect(endedHold(view('implement', { status: 'scheduled' }), 'mysql-local', 'other', now)).toBe('its change shows no step on this identity');
    expect(endedHold(null, 'mysql-local', 'app', now)).toBe('its change has published no state');
  });
});

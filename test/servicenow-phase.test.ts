import { loadConfig, servicenowSettings } from '../src/config';
import { DEFAULT_STATE_PHASES, closedLikeStates, servicenowEmergency, servicenowPhase } from '../src/itsm/servicenow/servicenow-phase';

describe('ServiceNow state, approval and type map to the normalised phase', () => {
  it.each([
    ['-5', 'not requested', 'normal', 'draft'],
    ['-4', 'not requested', 'normal', 'authorization'],
    ['-3', 'requested', 'normal', 'authorization'],
    ['-2', 'approved', 'normal', 'authorization'],
    ['-1', 'approved', 'normal', 'implement'],
    ['-1', 'not requested', 'standard', 'implement'],
    ['-1', 'requested', 'normal', 'authorization'],
    ['-1', 'requested', 'emergency', 'authorization'],
    ['-5', 'rejected', 'normal', 'rejected'],
    ['0', 'approved', 'normal', 'review'],
    ['3', 'approved', 'normal', 'closed'],
    ['4', 'rejected', 'normal', 'cancelled'],
  ])('state %s, approval %s, type %s is %s', (state, approval, type, phase) => {
    expect(servicenowPhase({ state, approval, type })).toBe(phase);
  });

  it('only type emergency is an emergency change', () => {
    expect([servicenowEmergency('emergency'), servicenowEmergency('normal'), servicenowEmergency('standard'), servicenowEmergency('')]).toEqual([true, false, false, false]);
  });

  it.each([
    ['12', 'approved', 'normal'],
    ['12', 'rejected', 'normal'],
    ['-1', 'approved', 'standard'],
  ])('a state the mapping does not name (%s, approval %s, type %s) is unknown: never implement, never closed', (state, approval, type) => {
    const withoutImplement = Object.fromEntries(Object.entries(DEFAULT_STATE_PHASES).filter(([value]) => value !== '-1'));
    expect(servicenowPhase({ state, approval, type }, withoutImplement)).toBe('unknown');
  });

  it('a configured custom state maps like the base ones, and every state mapped to closed is closed-like', () => {
    const phases = { ...DEFAULT_STATE_PHASES, '7': 'closed' as const, '8': 'implement' as const };
    expect(servicenowPhase({ state: '7', approval: 'approved', type: 'normal' }, phases)).toBe('closed');
    expect(servicenowPhase({ state: '8', approval: 'approved', type: 'normal' }, phases)).toBe('implement');
    expect(servicenowPhase({ state: '8', approval: 'requested', type: 'normal' }, phases)).toBe('authorization');
    expect(closedLikeStates(phases)).toEqual(['3', '7']);
    expect(closedLikeStates()).toEqual(['3']);
  });
});

describe('SERVICENOW_STATE_PHASES and SERVICENOW_REOPEN_STATE', () => {
  const base = {
    SERVICENOW_URL: 'https://example.service-now.com',
    SERVICENOW_USERNAME: 'changegate.integration',
    SERVICENOW_PASSWORD: 'x',
    SERVICENOW_WEBHOOK_SECRET: '0123456789abcdef',
    CHANGEGATE_ADMIN_TOKEN: '0123456789abcdef',
  };

  it('unset, the base system\'s model and Review as the reopen state', () => {
    expect(servicenowSettings(loadConfig(base))).toEqual({ statePhases: DEFAULT_STATE_PHASES, reopenState: '0', taskStates: { open: '1', closed: '3' } });
  });

  it('a JSON object of state value to phase replaces the mapping', () => {
    const config = loadConfig({
      ...base, SERVICENOW_STATE_PHASES: JSON.stringify({ ...DEFAULT_STATE_PHASES, 7: 'closed' }), SERVICENOW_REOPEN_STATE: '-1', SERVICENOW_TASK_STATE_OPEN: '-5', SERVICENOW_TASK_STATE_CLOSED: '7',
    });
    expect(servicenowSettings(config)).toEqual({ statePhases: { ...DEFAULT_STATE_PHASES, '7': 'closed' }, reopenState: '-1', taskStates: { open: '-5', closed: '7' } });
  });

  it.each([
    ['not json', /SERVICENOW_STATE_PHASES: must be a JSON object/],
    ['{"Closed": "closed"}', /SERVICENOW_STATE_PHASES\.Closed: each key must be an integer state value/],
    ['{"3": "done"}', /SERVICENOW_STATE_PHASES\.3: each phase must be one of/],
    ['{"3": "unknown"}', /SERVICENOW_STATE_PHASES\.3: each phase must be one of/],
  ])('%s is refused naming the variable', (value, message) => {
    expect(() => loadConfig({ ...base, SERVICENOW_STATE_PHASES: value })).toThrow(message);
  });

  it('a reconciliation interval outside PT10S..P1D is refused naming the variable', () => {
    expect(() => loadConfig({ ...base, SERVICENOW_RECONCILE_INTERVAL: 'PT1S' })).toThrow(/SERVICENOW_RECONCILE_INTERVAL: must be between PT10S and P1D/);
  });
});

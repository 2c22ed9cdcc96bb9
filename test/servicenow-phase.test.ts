import { servicenowEmergency, servicenowPhase } from '../src/itsm/servicenow/servicenow-phase';

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
});

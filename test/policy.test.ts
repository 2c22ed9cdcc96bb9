import { GrammarRegistry, loadConnectorsFile } from '../src/connectors/registry';
import { parseIdentityActions } from '../src/actions/plan-actions';
import { globMatcher, loadPolicyFile, parsePolicyFile, Policy } from '../src/policy/policy';

describe('the governance policy file', () => {
  const demoSystems = loadConnectorsFile('config/connectors.demo.json').connectors.map((c) => c.name);

  it('the demo policy validates against the demo connectors and marks reporting on mysql-local privileged', () => {
    const policy = new Policy(loadPolicyFile('config/policy.demo.json', demoSystems));
    expect(policy.isPrivileged('mysql-local', 'SELECT ON `reporting`.*')).toBe(true);
    expect(policy.isPrivileged('mysql-local', 'SELECT ON `reporting`.`daily`')).toBe(true);
    expect(policy.isPrivileged('mysql-local', 'SELECT ON `billing`.*')).toBe(false);
    expect(policy.isPrivileged('postgres-local', 'SELECT ON `reporting`.*')).toBe(false);
    expect(policy.ticketUsersOf({ kind: 'token', id: '7', name: 'demo-change-manager-0a1b2c3d' }, 'servicenow')).toEqual(['6816f79cc0a8016401c5a33be04be441']);
    expect(policy.ticketUsersOf({ kind: 'token', id: '7', name: 'demo-auditor-0a1b2c3d' }, 'servicenow')).toEqual([]);
  });

  it.each([
    ['an unknown version', { version: 2 }, /version: Invalid literal value, expected 1/],
    ['an unknown field', { version: 1, extra: true }, /Unrecognized key\(s\) in object: 'extra'/],
    ['a privileged entry for a system that is not configured', { version: 1, privileged: [{ system: 'nope', grants: ['*'] }] }, /privileged\.0\.system: no connector named 'nope' is configured/],
    ['an empty pattern list', { version: 1, privileged: [{ system: 'mysql-local', grants: [] }] }, /privileged\.0\.grants: Array must contain at least 1/],
    ['a control character in a principal', { version: 1, people: [{ source: 'servicenow', user: 'u', principal: 'a\nb' }] }, /people\.0\.principal: must not contain control characters/],
  ])('refuses %s at start-up, naming where', (_what, raw, message) => {
    expect(() => parsePolicyFile(raw, 'policy test.json', demoSystems)).toThrow(message);
  });

  it('patterns treat * as any run of characters and everything else literally', () => {
    const m = globMatcher('* ON `reporting`.*');
    expect(m('SELECT ON `reporting`.*')).toBe(true);
    expect(m('SELECT ON `reporting`.`t`')).toBe(true);
    expect(m('SELECT ON `reportingX`.*')).toBe(false);
    expect(globMatcher('a.b')('axb')).toBe(false);
    expect(globMatcher('(x)+')('(x)+')).toBe(true);
  });

  it('a ttl longer than the privilege class allows is refused at planning, on the ttl field, naming the class and the limit', () => {
    const grammars = new GrammarRegistry(
      loadConnectorsFile('config/connectors.demo.json'),
      new Policy({ version: 1, classes: [{ name: 'reporting', system: 'mysql-local', grants: ['* ON `reporting`.*'], maxTtl: 'P7D' }] }),
    );
    const joiner = (grants: string[], ttl: string) =>
      parseIdentityActions(JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'person', name: 'jdoe' }, grants, ttl }]), grammars, 'u_identity_actions');
    expect(joiner(['SELECT ON reporting.*'], 'P8D')).toEqual({
      ok: false,
      issues: [{ path: 'u_identity_actions[0].ttl', message: 'P8D exceeds P7D, the longest the policy allows for reporting grants on mysql-local (SELECT ON `reporting`.*)' }],
    });
    expect(joiner(['SELECT ON reporting.*'], 'P7D').ok).toBe(true);
    expect(joiner(['SELECT ON billing.*'], 'P8D').ok).toBe(true);
    const mover = parseIdentityActions(
      JSON.stringify([{ kind: 'mover', system: 'mysql-local', identity: { type: 'person', name: 'jdoe' }, grants: ['SELECT ON billing.*', 'SELECT ON reporting.daily'], ttl: 'P30D' }]),
      grammars,
      'u_identity_actions',
    );
    expect(mover).toMatchObject({ ok: false, issues: [{ path: 'u_identity_actions[0].ttl' }] });
  });
});

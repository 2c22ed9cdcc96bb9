import { loadConnectorsFile } from '../src/connectors/registry';
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
});

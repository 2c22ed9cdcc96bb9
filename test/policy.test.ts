import { ConnectorRegistry, type ConnectorsFile, GrammarRegistry, loadConnectorsFile } from '../src/connectors/registry';
import { connectorsFile } from './support/stack';
import { parseIdentityActions } from '../src/actions/plan-actions';
import { globMatcher, loadPolicyFile, parsePolicyFile, Policy } from '../src/policy/policy';
import { checkCertificationDirectory } from '../src/worker';

const klass = (extra: object = {}) => ({ name: 'billing-read', system: 'mysql-local', grants: ['SELECT ON `billing`.*'], maxTtl: 'P30D', ...extra });

describe('the governance policy file', () => {
  const demoSystems = loadConnectorsFile('config/connectors.demo.json').connectors.map((c) => c.name);

  it('the demo and compose policies allow standing access to SELECT on billing on mysql-local for persons only', () => {
    const composeSystems = loadConnectorsFile('config/connectors.compose.json').connectors.map((c) => c.name);
    for (const policy of [new Policy(loadPolicyFile('config/policy.demo.json', demoSystems)), new Policy(loadPolicyFile('config/policy.compose.json', composeSystems))]) {
      expect(policy.classOf('mysql-local', 'SELECT ON `billing`.*')).toEqual({ name: 'billing-read', maxTtl: 'P30D', maxTtlMs: 30 * 86_400_000, standing: { identityTypes: ['person'] } });
      expect(policy.classOf('mysql-local', 'SELECT ON `billing`.`invoices`')?.standing).toEqual({ identityTypes: ['person'] });
      expect(policy.classOf('mysql-local', 'INSERT ON `billing`.*')).toBeUndefined();
      expect(policy.classOf('postgres-local', 'SELECT ON `billing`.*')).toBeUndefined();
    }
  });

  it('the demo policy validates against the demo connectors and marks reporting on mysql-local privileged', () => {
    const policy = new Policy(loadPolicyFile('config/policy.demo.json', demoSystems));
    expect(policy.isPrivileged('mysql-local', 'SELECT ON `reporting`.*')).toBe(true);
    expect(policy.isPrivileged('mysql-local', 'SELECT ON `reporting`.`daily`')).toBe(true);
    expect(policy.isPrivileged('mysql-local', 'SELECT ON `billing`.*')).toBe(false);
    expect(policy.isPrivileged('postgres-local', 'SELECT ON `reporting`.*')).toBe(false);
    expect(policy.ticketUsersOf({ kind: 'token', id: '7', name: 'demo-change-manager-0a1b2c3d' }, 'servicenow')).toEqual(['6816f79cc0a8016401c5a33be04be441']);
    expect(policy.ticketUsersOf({ kind: 'token', id: '7', name: 'demo-auditor-0a1b2c3d' }, 'servicenow')).toEqual([]);
    // An emergency may rotate and grant on mysql-local before it is authorized; nothing else runs early.
    expect(policy.beforeAuthorization('mysql-local', 'rotate')).toBe(true);
    expect(policy.beforeAuthorization('mysql-local', 'joiner')).toBe(true);
    expect(policy.beforeAuthorization('mysql-local', 'mover')).toBe(false);
    expect(policy.beforeAuthorization('postgres-local', 'joiner')).toBe(false);
    expect(policy.exceptionTerms()).toEqual({ window: 'PT24H', windowMs: 86_400_000, escalateAfterMs: 43_200_000, onDeadline: 'revoke', reviewGroup: 'Change Management' });
    // Without an `exceptions` section the same terms apply: an undecided exception is revoked at its deadline.
    expect(new Policy({ version: 1, exceptions: { window: 'PT2H' } }).exceptionTerms()).toEqual({ window: 'PT2H', windowMs: 7_200_000, escalateAfterMs: 3_600_000, onDeadline: 'revoke', reviewGroup: 'Change Management' });
  });

  it.each([
    ['an unknown version', { version: 2 }, /version: Invalid literal value, expected 1/],
    ['an unknown field', { version: 1, extra: true }, /Unrecognized key\(s\) in object: 'extra'/],
    ['a privileged entry for a system that is not configured', { version: 1, privileged: [{ system: 'nope', grants: ['*'] }] }, /privileged\.0\.system: no connector named 'nope' is configured/],
    ['an empty pattern list', { version: 1, privileged: [{ system: 'mysql-local', grants: [] }] }, /privileged\.0\.grants: Array must contain at least 1/],
    ['a control character in a principal', { version: 1, people: [{ source: 'servicenow', user: 'u', principal: 'a\nb' }] }, /people\.0\.principal: must not contain control characters/],
    ['standing access for an unknown identity type', { version: 1, classes: [klass({ standing: { identityTypes: ['robot'] } })] }, /classes\.0\.standing\.identityTypes\.0: must be one of person, service_account$/],
    ['standing access for no identity type', { version: 1, classes: [klass({ standing: { identityTypes: [] } })] }, /classes\.0\.standing\.identityTypes: must name at least one identity type \(person, service_account\)$/],
    ['standing access naming a type twice', { version: 1, classes: [klass({ standing: { identityTypes: ['person', 'person'] } })] }, /classes\.0\.standing\.identityTypes: must not name an identity type twice$/],
    ['an unknown field in standing access', { version: 1, classes: [klass({ standing: { identityTypes: ['person'], owners: ['x'] } })] }, /classes\.0\.standing: Unrecognized key\(s\) in object: 'owners'$/],
    ['standing access that is not an object', { version: 1, classes: [klass({ standing: true })] }, /classes\.0\.standing: Expected object, received boolean$/],
    ['an emergency kind that cannot run before authorization', { version: 1, emergency: [{ system: 'mysql-local', kinds: ['mover'] }] }, /emergency\.0\.kinds\.0: must be one of rotate, joiner$/],
    ['an exception window that is not a duration', { version: 1, exceptions: { window: '24h' } }, /exceptions\.window: must be an ISO-8601 duration from PT1S to P90D \(e\.g\. PT24H\)$/],
    ['an exception window beyond 90 days', { version: 1, exceptions: { window: 'P91D' } }, /exceptions\.window: must be an ISO-8601 duration from PT1S to P90D/],
    ['escalation at the deadline', { version: 1, exceptions: { escalateAfter: 1 } }, /exceptions\.escalateAfter: must be a share of the window below 1$/],
    ['escalation at the grant', { version: 1, exceptions: { escalateAfter: 0 } }, /exceptions\.escalateAfter: must be a share of the window above 0$/],
    ['an unknown deadline default', { version: 1, exceptions: { onDeadline: 'escalate' } }, /exceptions\.onDeadline: must be 'revoke' or 'accept'$/],
    ['an unknown exceptions field', { version: 1, exceptions: { notify: 'x' } }, /exceptions: Unrecognized key\(s\) in object: 'notify'$/],
    ['drift to certify without a certification section', { version: 1, drift: [{ system: 'mysql-local', on: { orphan: 'certify' } }] }, /drift\.0\.on\.orphan: certify needs the certification section \(who reviews, by when\)$/],
    ['an unknown drift action', { version: 1, drift: [{ system: 'mysql-local', on: { orphan: 'ignore' } }] }, /drift\.0\.on\.orphan: must be one of report, remediate, certify$/],
    ['a certification reviewer naming no rule', { version: 1, certification: { reviewer: {} } }, /certification\.reviewer: must name exactly one of role, group, manager$/],
    ['a certification reviewer naming two rules', { version: 1, certification: { reviewer: { role: 'security-reviewer', group: 'iam' } } }, /certification\.reviewer: must name exactly one of role, group, manager$/],
    ['a certification reviewer role that does not decide', { version: 1, certification: { reviewer: { role: 'auditor' } } }, /certification\.reviewer\.role: must be 'security-reviewer' or 'change-manager'$/],
    ['a certification due that is not a duration', { version: 1, certification: { reviewer: { role: 'security-reviewer' }, due: '7 days' } }, /certification\.due: must be an ISO-8601 duration longer than zero \(e\.g\. P7D\)$/],
    ['a certification due of zero', { version: 1, certification: { reviewer: { role: 'security-reviewer' }, due: 'PT0S' } }, /certification\.due: must be an ISO-8601 duration longer than zero/],
    ['an unknown timeout default', { version: 1, certification: { reviewer: { role: 'security-reviewer' }, onTimeout: 'keep' } }, /certification\.onTimeout: must be 'keep-and-escalate' \(the default\) or 'revoke'$/],
    ['an unknown certification trigger', { version: 1, certification: { reviewer: { role: 'security-reviewer' }, triggers: { drift: true } } }, /certification\.triggers: Unrecognized key\(s\) in object: 'drift'$/],
    ['a trigger that is not on or off', { version: 1, certification: { reviewer: { role: 'security-reviewer' }, triggers: { mover: 'yes' } } }, /certification\.triggers\.mover: Expected boolean, received string$/],
    ['unused-after (no connector can tell last use)', { version: 1, certification: { reviewer: { role: 'security-reviewer' }, unusedAfter: 'P90D' } }, /certification\.unusedAfter: not supported: no configured connector can tell when an identity was last used$/],
    ['a manager directory that is not configured', { version: 1, certification: { reviewer: { manager: { directory: 'nope' } } } }, /certification\.reviewer\.manager\.directory: no connector named 'nope' is configured/],
    ['an unknown kind of drift', { version: 1, drift: [{ system: 'mysql-local', on: { 'extra-grants': 'report' } }] }, /drift\.0\.on\.extra-grants: must be one of orphan, extra-grant, missing-grant, re-enabled$/],
    ['an orphan cap below one', { version: 1, drift: [{ system: 'mysql-local', on: { orphan: 'remediate' }, orphanCap: 0 }] }, /drift\.0\.orphanCap: Number must be greater than or equal to 1$/],
    ['an emergency entry for a system that is not configured', { version: 1, emergency: [{ system: 'nope', kinds: ['rotate'] }] }, /emergency\.0\.system: no connector named 'nope' is configured/],
  ])('refuses %s at start-up, naming where', (_what, raw, message) => {
    expect(() => parsePolicyFile(raw, 'policy test.json', demoSystems)).toThrow(message);
  });

  it('certification: triggers off, a seven-day due and keep-and-escalate unless the policy says otherwise; revoke only when named', () => {
    const minimal = new Policy({ version: 1, certification: { reviewer: { role: 'security-reviewer' } } });
    expect(minimal.certification).toEqual({
      triggers: { 'owner-change': false, reassign: false, mover: false, rotation: false }, reviewer: { role: 'security-reviewer', fallbackRole: 'security-reviewer' },
      due: 'P7D', onTimeout: 'keep-and-escalate', source: 'servicenow',
    });
    expect(minimal.certifies('mover')).toBe(false);
    expect(minimal.onTimeout()).toBe('keep-and-escalate');
    const strict = new Policy({ version: 1, certification: { reviewer: { group: 'iam-reviewers' }, triggers: { mover: true }, due: 'PT3S', onTimeout: 'revoke' } });
    expect([strict.certifies('mover'), strict.certifies('rotation'), strict.onTimeout()]).toEqual([true, false, 'revoke']);
    // No section: nothing opens an item, and drift may not ask for one.
    expect(new Policy().certification).toBeUndefined();
    expect(new Policy().certifies('owner-change')).toBe(false);
    expect(new Policy({ version: 1, drift: [{ system: 'mysql-local', on: { 'extra-grant': 'certify' } }], certification: { reviewer: { role: 'change-manager' } } }).driftAction('mysql-local', 'extra-grant')).toBe('certify');
  });

  it("a manager reviewer rule must name a directory of people: an ldap connector passes, mysql-local is refused when the worker starts", () => {
    const registry = new ConnectorRegistry(loadConnectorsFile('config/connectors.demo.json'), {});
    const manager = (directory: string) => new Policy({ version: 1, certification: { reviewer: { manager: { directory } } } });
    const ldap = loadConnectorsFile('config/connectors.demo.json').connectors.find((c) => c.type === 'ldap')?.name as string;
    expect(() => checkCertificationDirectory(manager(ldap), registry)).not.toThrow();
    expect(() => checkCertificationDirectory(manager('mysql-local'), registry)).toThrow("policy certification.reviewer.manager.directory: connector 'mysql-local' is not a directory of people (an ldap connector is)");
    expect(() => checkCertificationDirectory(new Policy(), registry)).not.toThrow();
  });

  it('the demo policy certifies what movers, rotations, hand-overs and owner changes touch, reviewed by a security reviewer within seven days', () => {
    const policy = new Policy(loadPolicyFile('config/policy.demo.json', demoSystems));
    expect(policy.certification).toMatchObject({ reviewer: { role: 'security-reviewer' }, due: 'P7D', onTimeout: 'keep-and-escalate' });
    for (const trigger of ['owner-change', 'reassign', 'mover', 'rotation'] as const) expect(policy.certifies(trigger)).toBe(true);
    expect(policy.driftAction('mysql-local', 'extra-grant')).toBe('certify');
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

  describe('a grant with neither a ttl nor an until is standing access, accepted only where the policy allows it and owned', () => {
    const grammars = new GrammarRegistry(
      loadConnectorsFile('config/connectors.demo.json'),
      new Policy({
        version: 1,
        privileged: [{ system: 'mysql-local', grants: ['* ON `reporting`.*'] }],
        classes: [
          klass({ standing: { identityTypes: ['person'] } }),
          { name: 'reporting', system: 'mysql-local', grants: ['* ON `reporting`.*'], maxTtl: 'P7D' },
          { name: 'ops', system: 'mysql-local', grants: ['* ON `ops`.*'], maxTtl: 'P7D', standing: { identityTypes: ['service_account'] } },
        ],
      }),
    );
    const plan = (action: object) =>
      parseIdentityActions(JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'person', name: 'jdoe' }, grants: ['SELECT ON billing.*'], owner: 'jdoe-manager', ...action }]), grammars, 'u_identity_actions');
    const remedy = "give the action a ttl or an until, or use a policy that allows standing access to it for person identities";

    it('a person joining with SELECT on billing and an owner is planned as standing access', () => {
      expect(plan({})).toEqual({ ok: true, value: [expect.objectContaining({ kind: 'joiner', grants: ['SELECT ON `billing`.*'], standing: true, owner: 'jdoe-manager' })] });
      expect(plan({ grants: ['SELECT ON billing.invoices'] })).toMatchObject({ ok: true, value: [{ standing: true }] });
    });

    it('a ttl or an until is a cleanup path of its own: nothing is standing then', () => {
      for (const extra of [{ ttl: 'PT8H' }, { until: 'ticket-closed' }, { until: 'window-end' }, { ttl: 'PT8H', owner: undefined, grants: ['SELECT ON nowhere.*'] }]) {
        const result = plan(extra);
        expect(result.ok).toBe(true);
        expect(result.ok && result.value[0]).not.toHaveProperty('standing');
      }
    });

    it('refuses standing access without an owner, on the owner field, saying why the inventory needs one', () => {
      expect(plan({ owner: undefined })).toEqual({
        ok: false,
        issues: [{ path: 'u_identity_actions[0].owner', message: "standing access (no ttl, no until) needs an owner: the inventory records it so that the owner's leaver revokes it and certification reviews it; name one, or give the action a ttl or an until" }],
      });
    });

    it('refuses a grant no class covers, a class that allows no standing access, and one that allows it to other identity types, each on its grant', () => {
      expect(plan({ grants: ['SELECT ON billing.*', 'INSERT ON billing.invoices', 'SELECT ON reporting.*', 'SELECT ON ops.*'] })).toEqual({
        ok: false,
        issues: [
          { path: 'u_identity_actions[0].grants[1]', message: `INSERT ON \`billing\`.\`invoices\` (no class) has no cleanup path: no privilege class on mysql-local covers it; ${remedy}` },
          { path: 'u_identity_actions[0].grants[2]', message: `SELECT ON \`reporting\`.* (class reporting) has no cleanup path: the policy allows no standing access to reporting grants; ${remedy}` },
          { path: 'u_identity_actions[0].grants[3]', message: `SELECT ON \`ops\`.* (class ops) has no cleanup path: the policy allows standing access to ops grants only for service_account identities; ${remedy}` },
        ],
      });
      // The grant's class decides for the identity type the action names.
      expect(plan({ identity: { type: 'service_account', name: 'svc_billing' } })).toMatchObject({
        ok: false,
        issues: [{ path: 'u_identity_actions[0].grants[0]', message: expect.stringMatching(/^SELECT ON `billing`\.\* \(class billing-read\) has no cleanup path: the policy allows standing access to billing-read grants only for person identities; .* for service_account identities$/) }],
      });
    });

    it('a privileged grant with no cleanup path is refused at planning, before anything waits for a decision', () => {
      expect(plan({ grants: ['SELECT ON reporting.daily'] })).toMatchObject({ ok: false, issues: [{ path: 'u_identity_actions[0].grants[0]', message: expect.stringMatching(/^SELECT ON `reporting`\.`daily` \(class reporting\) has no cleanup path/) }] });
    });

    it('a mover is accepted: it learns what it adds from its read-back, and carries the reasons it would be refused for adding', () => {
      const mover = (action: object) =>
        parseIdentityActions(JSON.stringify([{ kind: 'mover', system: 'mysql-local', identity: { type: 'person', name: 'jdoe' }, ...action }]), grammars, 'u_identity_actions');
      const removesOnly = mover({ grants: [] });
      expect(removesOnly).toMatchObject({ ok: true, value: [{ kind: 'mover', grants: [] }] });
      expect(removesOnly.ok && removesOnly.value[0]).not.toHaveProperty('standing');
      expect(removesOnly.ok && removesOnly.value[0]).not.toHaveProperty('noCleanupPath');
      const standing = mover({ grants: ['SELECT ON billing.*'], owner: 'jdoe-manager' });
      expect(standing).toMatchObject({ ok: true, value: [{ standing: true }] });
      expect(standing.ok && standing.value[0]).not.toHaveProperty('noCleanupPath');
      expect(mover({ grants: ['SELECT ON billing.*', 'UPDATE ON billing.invoices'], owner: 'jdoe-manager' })).toMatchObject({
        ok: true,
        value: [{ noCleanupPath: [{ grant: 'UPDATE ON `billing`.`invoices`', reason: `UPDATE ON \`billing\`.\`invoices\` (no class) has no cleanup path: no privilege class on mysql-local covers it; ${remedy}` }] }],
      });
      expect(mover({ grants: ['SELECT ON billing.*'] })).toMatchObject({ ok: true, value: [{ noCleanupPath: [{ reason: expect.stringMatching(/^standing access \(no ttl, no until\) needs an owner/) }] }] });
      const withTtl = mover({ grants: ['UPDATE ON billing.invoices'], ttl: 'PT8H' });
      expect(withTtl.ok && withTtl.value[0]).not.toHaveProperty('noCleanupPath');
    });
  });
});

describe('emergency actions before authorization, as planning reads the policy', () => {
  const connectors = {
    connectors: [
      ...connectorsFile().connectors,
      { name: 'vault-local', type: 'vault', address: 'http://127.0.0.1:8200', tokenEnv: 'CG_UNUSED_VAULT_TOKEN', kvPrefix: 'changegate', policy: { protectedAccounts: [] } },
    ],
  } as ConnectorsFile;
  const rotate = JSON.stringify([{ kind: 'rotate', system: 'mysql-local', identity: { type: 'service_account', name: 'svc_app', host: '%' }, deliverTo: { system: 'vault-local', path: 'apps/app/db' } }]);
  const plan = (policy: Policy, emergency: boolean) => {
    const out = parseIdentityActions(rotate, new GrammarRegistry(connectors, policy), 'u_identity_actions', { emergency });
    if (!out.ok) throw new Error(JSON.stringify(out.issues));
    return out.value[0];
  };
  const allows = new Policy({ version: 1, emergency: [{ system: 'mysql-local', kinds: ['rotate'] }] });

  it('an emergency rotation the policy allows starts at once; a normal change, or a policy without it, waits', () => {
    expect(plan(allows, true)?.startsAtOnce).toBe(true);
    expect(plan(allows, false)?.startsAtOnce).toBeUndefined();
    expect(plan(new Policy(), true)?.startsAtOnce).toBeUndefined();
  });
});

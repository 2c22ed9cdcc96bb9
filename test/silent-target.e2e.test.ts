import { randomBytes } from 'node:crypto';
import { ADMIN_USER, GATEWAY_USER, type ScimTarget, startScimProvider } from './support/servers/scim';
import { type Stack, startStack, uniqueTicketNumber, waitFor } from './support/stack';

/**
 * A target that answers a revoke with success and keeps the access: the SCIM provider drops every member write the
 * gateway sends (its own sync puts memberships back, as the integration sees it) while it still answers 2xx. The
 * workflow's "not verified" path end to end: the step fails, the evidence row says so, closure-check refuses and the
 * ticket's gate is never set. Real Temporal, MariaDB and SCIM provider process; ServiceNow simulated.
 */
describe('a target that silently ignores a revoke', () => {
  let scim: ScimTarget;
  let stack: Stack;
  beforeAll(async () => {
    scim = await startScimProvider({ ignoreMemberWritesBy: [GATEWAY_USER] });
    await scim.admin.createGroup('cg-readers');
    process.env.CG_SILENT_SCIM_TOKEN = scim.tokens.gateway;
    stack = await startStack({
      extraConnectors: [{
        name: 'scim-silent', type: 'scim', baseUrl: scim.url, tokenEnv: 'CG_SILENT_SCIM_TOKEN', ownUserName: GATEWAY_USER,
        policy: { protectedAccounts: [ADMIN_USER], revokeMode: 'disable' },
      }],
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await scim?.stop();
  });

  it('a leaver whose group removal the provider drops fails "not verified", with evidence saying so, closure refused and the gate never set', async () => {
    const userName = `silent.${randomBytes(4).toString('hex')}@scim.test`;
    const userId = await scim.admin.createUser(userName);
    const group = (await scim.admin.findGroup('cg-readers'))!;
    await scim.admin.addMember(group.id, userId);
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({
      number, state: '-1', approval: 'approved',
      u_identity_actions: JSON.stringify([{ kind: 'leaver', system: 'scim-silent', identity: { type: 'person', name: userName } }]),
    });

    const check = await waitFor('the leaver to end', async () => {
      const r = await stack.closureCheck(number);
      return r.data.steps?.[0]?.status === 'failed' ? r.data : null;
    }, 60_000);
    expect(check.steps[0].detail).toMatch(/not verified.*grants still present: group=cg-readers/);
    expect(check.allowed).toBe(false);
    expect(check.reasons).toEqual([expect.stringMatching(/^leaver of .* on scim-silent failed: .*grants still present: group=cg-readers/)]);

    // The evidence row records what the read-back found: not verified, the membership still there.
    const rows = await stack.evidence.list(`servicenow:${number}`);
    const row = rows.find((r) => r.actionKind === 'leaver')!;
    expect(row).toMatchObject({ verified: false, observedState: { exists: true, locked: true, grants: ['group=cg-readers'] } });
    expect(row.verification).toMatchObject({ mismatches: ['grants still present: group=cg-readers'] });

    // The provider really kept it, read as its administrator: the gateway's 2xx was not the truth.
    expect((await scim.admin.findGroup('cg-readers'))?.members?.map((m) => m.value)).toContain(userId);
    expect((await scim.admin.findUser(userName))?.active).toBe(false);
    // The gate the ticket carries never lets it close.
    await waitFor('the failure noted on the ticket', () => stack.sim.journal(change.sys_id as string, 'work_notes').some((n) => n.value.includes('FAILED')));
    expect(stack.sim.getChange(change.sys_id as string)?.u_identity_cleanup).not.toBe('verified');
  });
});

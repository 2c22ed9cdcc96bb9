import { InventoryStore } from '../src/inventory/inventory-store';
import { createAccount, type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';

/**
 * Standing access on the real parts (Temporal, MariaDB as target and as the gateway's database, the ServiceNow
 * simulator): a grant with neither a ttl nor an until is accepted only where the governance policy allows standing
 * access for its class and the identity's type, and the action names an owner; anything else is refused at planning.
 */
describe('standing access: a new hire keeps ordinary access the policy allows, owned; anything else with no end is refused at planning', () => {
  let stack: Stack;
  let inventory: InventoryStore;
  beforeAll(async () => {
    stack = await startStack({
      policy: {
        version: 1,
        classes: [
          { name: 'billing-read', system: 'mysql-local', grants: ['SELECT ON `cgt\\_billing`.*'], maxTtl: 'P30D', standing: { identityTypes: ['person'] } },
          { name: 'billing-write', system: 'mysql-local', grants: ['* ON `cgt_billing`.*'], maxTtl: 'P7D' },
        ],
      },
    });
    inventory = new InventoryStore(stack.ds);
  });
  afterAll(async () => {
    await stack.stop();
  });

  const SELECT = 'SELECT ON `cgt\\_billing`.*';
  const joiner = (name: string, extra: object = {}) =>
    JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'person', name, host: '%' }, grants: ['SELECT ON cgt_billing.*'], owner: 'hiring-manager', ...extra }]);

  it("a new hire's ordinary access, standing by policy and owned, is verified and lets the change close; the inventory holds it as standing access of its owner", async () => {
    const account = uniqueAccount('hire');
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: joiner(account) });
    const sysId = change.sys_id as string;
    const check = await waitFor('closure allowed', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed ? r.data : null;
    });
    expect(check.reasons).toEqual([]);
    expect(check.steps).toEqual([expect.objectContaining({ kind: 'joiner', status: 'verified', cleanup: { status: 'standing', owner: 'hiring-manager' } })]);
    expect((await stack.grantsOf(account)).join('\n')).toMatch(/GRANT SELECT ON `cgt\\_billing`\.\*/);
    await waitFor('gate set on the ticket', () => stack.sim.getChange(sysId)?.u_identity_cleanup === 'verified');
    const note = await waitFor('the grant work note', () => stack.sim.journal(sysId, 'work_notes').find((n) => n.value.includes('Verified: joiner')));
    expect(note.value).toContain("Standing access owned by hiring-manager: revoked by the owner's leaver, reviewed by certification.");
    const key = `servicenow:${number}`;
    expect(await inventory.find('mysql-local', account, '%')).toMatchObject({
      status: 'managed',
      type: 'person',
      owner: 'hiring-manager',
      ownerSource: 'action',
      grants: [{ grant: SELECT, tickets: [key], standing: [{ ticket: key, owner: 'hiring-manager' }] }],
    });
    // Closing the change ends the workflow; the standing access stays with its owner.
    stack.sim.updateChange(sysId, { state: '3', close_code: 'successful', close_notes: 'done' });
    await waitFor('workflow completed', async () => (await stack.workflows.client.workflow.getHandle(`change-servicenow-${number}`).describe()).status.name === 'COMPLETED');
    expect((await stack.grantsOf(account)).join('\n')).toMatch(/GRANT SELECT ON `cgt\\_billing`\.\*/);
    expect((await stack.evidence.list(key)).map((r) => r.outcome)).toEqual(['granted']);
  });

  it('cancelling the change takes standing access back at once, read back and evidenced, and the inventory holds it no longer', async () => {
    const account = uniqueAccount('hirc');
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: joiner(account) });
    const key = `servicenow:${number}`;
    await waitFor('standing access verified', async () => (await stack.closureCheck(number)).data.steps?.[0]?.cleanup?.status === 'standing');
    stack.sim.updateChange(change.sys_id as string, { state: '4' });
    await waitFor('account dropped after cancellation', async () => !(await stack.accountExists(account)));
    const rows = await waitFor('take-back evidence', async () => {
      const r = await stack.evidence.list(key);
      return r.some((x) => x.outcome === 'expired') ? r : null;
    });
    expect(rows.map((r) => [r.outcome, r.verified])).toEqual([
      ['granted', true],
      ['expired', true],
    ]);
    expect(await inventory.find('mysql-local', account, '%')).toMatchObject({ status: 'revoked', grants: [] });
  });

  it('a mover that adds ordinary access with no ttl and an owner holds it as standing access too', async () => {
    const account = uniqueAccount('movs');
    await createAccount(stack.admin, account, ['INSERT ON `cgt_billing`.`invoices`']);
    const number = uniqueTicketNumber();
    const actions = JSON.stringify([{ kind: 'mover', system: 'mysql-local', identity: { type: 'person', name: account, host: '%' }, grants: ['SELECT ON cgt_billing.*'], owner: 'hiring-manager' }]);
    stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: actions });
    const check = await waitFor('closure allowed', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed ? r.data : null;
    });
    expect(check.steps[0]).toMatchObject({ kind: 'mover', status: 'verified', cleanup: { status: 'standing', owner: 'hiring-manager' } });
    const key = `servicenow:${number}`;
    expect(await inventory.find('mysql-local', account, '%')).toMatchObject({ owner: 'hiring-manager', grants: [{ grant: SELECT, tickets: [key], standing: [{ ticket: key, owner: 'hiring-manager' }] }] });
    expect((await stack.grantsOf(account)).join('\n')).not.toMatch(/INSERT/);
  });

  it.each([
    [
      'whose class allows no standing access',
      { grants: ['SELECT ON cgt_billing.*', 'INSERT ON cgt_billing.invoices'] },
      [
        {
          path: 'u_identity_actions[0].grants[1]',
          message:
            'INSERT ON `cgt_billing`.`invoices` (class billing-write) has no cleanup path: the policy allows no standing access to billing-write grants; give the action a ttl or an until, or use a policy that allows standing access to it for person identities',
        },
      ],
    ],
    [
      'that no class covers',
      { grants: ['SELECT ON cgt_reporting.*'] },
      [
        {
          path: 'u_identity_actions[0].grants[0]',
          message:
            'SELECT ON `cgt\\_reporting`.* (no class) has no cleanup path: no privilege class on mysql-local covers it; give the action a ttl or an until, or use a policy that allows standing access to it for person identities',
        },
      ],
    ],
    [
      'for an identity type its class does not allow standing access to',
      { identityType: 'service_account' },
      [
        {
          path: 'u_identity_actions[0].grants[0]',
          message:
            'SELECT ON `cgt\\_billing`.* (class billing-read) has no cleanup path: the policy allows standing access to billing-read grants only for person identities; give the action a ttl or an until, or use a policy that allows standing access to it for service_account identities',
        },
      ],
    ],
    [
      'without an owner',
      { owner: undefined },
      [
        {
          path: 'u_identity_actions[0].owner',
          message:
            "standing access (no ttl, no until) needs an owner: the inventory records it so that the owner's leaver revokes it and certification reviews it; name one, or give the action a ttl or an until",
        },
      ],
    ],
  ])('a joiner with neither a ttl nor an until %s is refused at planning with the reason, and nothing is granted', async (_what, variant, issues) => {
    const account = uniqueAccount('nottl');
    const number = uniqueTicketNumber();
    const { identityType, ...fields } = variant as { identityType?: string; [field: string]: unknown };
    const base = JSON.parse(joiner(account, fields)) as Array<{ identity: { type: string } }>;
    if (identityType) base[0]!.identity.type = identityType;
    const actions = JSON.stringify(base);
    // The ticket's own webhook is refused: no workflow, no grant.
    const change = stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: actions });
    const sysId = change.sys_id as string;
    await waitFor('the refused delivery', () => stack.sim.deliveries.some((d) => d.sysId === sysId && d.status === 400));
    // The same record delivered again shows what the refusal says.
    const res = await stack.deliver({ ...stack.sim.getChange(sysId), sys_mod_count: '0' });
    expect(res.status).toBe(400);
    expect(res.data.error).toMatchObject({ code: 'VALIDATION_FAILED', issues });
    expect(await stack.accountExists(account)).toBe(false);
    expect(await stack.evidence.list(`servicenow:${number}`)).toEqual([]);
    expect(await stack.workflows.status('servicenow', number)).toBeFalsy();
  });
});

import { randomBytes } from 'node:crypto';
import axios from 'axios';
import { createAccount, type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';

/**
 * The governance policy on a real stack: a privileged grant waits for a change manager's decision after the change is
 * authorized; the decision is a Temporal update whose validator refuses what must not be decided, and evidence names
 * who decided and why.
 */
describe('privileged grants wait for a change manager, who is never the requester', () => {
  const REQUESTER = randomBytes(16).toString('hex');
  let stack: Stack;
  let requester: string;
  let manager: { name: string; token: string };
  let auditor: string;
  beforeAll(async () => {
    stack = await startStack({
      policy: {
        version: 1,
        people: [{ source: 'servicenow', user: REQUESTER, principal: 'requester-*' }],
        privileged: [{ system: 'mysql-local', grants: ['* ON `cgt\\_reporting`.*'] }],
      },
    });
    requester = (await stack.tokens.create(`requester-${randomBytes(4).toString('hex')}`, ['change-manager'], 'test')).token;
    manager = await stack.tokenFor('change-manager');
    auditor = (await stack.tokenFor('auditor')).token;
  });
  afterAll(async () => {
    await stack.stop();
  });

  const joiner = (name: string) =>
    JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name, host: '%' }, grants: ['SELECT ON cgt_billing.*', 'SELECT ON cgt_reporting.*'], ttl: 'PT8H' }]);
  const decide = (number: string, stepId: string, token: string, body: unknown) =>
    axios.post(`${stack.apiUrl}/api/changes/servicenow/${number}/steps/${encodeURIComponent(stepId)}/decision`, body, {
      headers: { authorization: `Bearer ${token}` },
      validateStatus: () => true,
    });
  const waitingStep = async (number: string) =>
    waitFor('the step waiting for a decision', async () => {
      const r = await stack.closureCheck(number);
      return r.data.steps?.[0]?.status === 'waiting-approval' ? r.data : null;
    });

  it('waits after authorization, refuses self-approval, the wrong role, no justification and an unknown step, then grants once approved', async () => {
    const account = uniqueAccount('priv');
    const number = uniqueTicketNumber();
    const implementer = randomBytes(16).toString('hex');
    stack.sim.createChange({ number, state: '-1', approval: 'approved', requested_by: REQUESTER, assigned_to: implementer, u_identity_actions: joiner(account) });
    const check = await waitingStep(number);
    // The ticket's people, as the source's user ids: the requester is refused below; the implementer is kept for reviews.
    expect(await stack.workflows.status('servicenow', number)).toMatchObject({ requester: REQUESTER, implementer });
    const stepId = check.steps[0].stepId as string;
    expect(check.allowed).toBe(false);
    expect(check.reasons[0]).toMatch(/waits for a change manager to decide on privileged grant\(s\): SELECT ON `cgt\\_reporting`\.\*/);
    expect(check.steps[0].approval).toEqual({ grants: ['SELECT ON `cgt\\_reporting`.*'] });
    expect(await stack.accountExists(account)).toBe(false);

    const self = await decide(number, stepId, requester, { decision: 'approve', justification: 'needed for the quarter close' });
    expect(self.status).toBe(403);
    expect(self.data.error.message).toMatch(/requester of the change may not decide.*self-approval/);
    expect((await decide(number, stepId, auditor, { decision: 'approve', justification: 'x' })).status).toBe(403);
    const blank = await decide(number, stepId, manager.token, { decision: 'approve', justification: '   ' });
    expect(blank.status).toBe(400);
    expect(blank.data.error.message).toMatch(/justification: a decision needs one/);
    expect((await decide(number, stepId, manager.token, { decision: 'approve' })).status).toBe(400);
    const unknown = await decide(number, 'joiner:0000000000000000', manager.token, { decision: 'approve', justification: 'x' });
    expect(unknown.status).toBe(404);
    expect((await decide(number, stepId, manager.token, { decision: 'maybe', justification: 'x' })).status).toBe(400);
    // Nothing of that reached the evidence or the target.
    expect((await stack.evidence.list(`servicenow:${number}`)).length).toBe(0);
    expect(await stack.accountExists(account)).toBe(false);

    const approved = await decide(number, stepId, manager.token, { decision: 'approve', justification: 'reporting access for the audit, ticket RITM0012' });
    expect(approved.status).toBe(200);
    expect(approved.data).toMatchObject({ stepId, decision: 'approve', evidenceHash: expect.stringMatching(/^[0-9a-f]{64}$/) });
    const rows = await waitFor('granted evidence', async () => {
      const r = await stack.evidence.list(`servicenow:${number}`);
      return r.some((x) => x.outcome === 'granted') ? r : null;
    });
    expect(rows.map((r) => [r.outcome, r.verified])).toEqual([['approved', false], ['granted', true]]);
    expect(rows[0]).toMatchObject({
      principal: { kind: 'token', name: manager.name },
      verification: { decision: 'approve', justification: 'reporting access for the audit, ticket RITM0012', grants: ['SELECT ON `cgt\\_reporting`.*'] },
    });
    expect((await stack.grantsOf(account)).join('\n')).toMatch(/cgt\\_reporting/);
    const again = await decide(number, stepId, manager.token, { decision: 'reject', justification: 'changed my mind' });
    expect(again.status).toBe(409);
    expect(await stack.evidence.verifyChain(`servicenow:${number}`)).toEqual({ valid: true, rows: 2 });
  });

  it('a rejection grants nothing, is evidence with the reason, and lets the change close', async () => {
    const account = uniqueAccount('privr');
    const number = uniqueTicketNumber();
    stack.sim.createChange({ number, state: '-1', approval: 'approved', requested_by: REQUESTER, u_identity_actions: joiner(account) });
    const stepId = (await waitingStep(number)).steps[0].stepId as string;
    const rejected = await decide(number, stepId, manager.token, { decision: 'reject', justification: 'reporting is not part of this role' });
    expect(rejected.status).toBe(200);
    const check = await waitFor('closure allowed', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed ? r.data : null;
    });
    expect(check.steps[0]).toMatchObject({ status: 'rejected', detail: expect.stringMatching(new RegExp(`rejected by ${manager.name}: reporting is not part of this role`)) });
    expect(await stack.accountExists(account)).toBe(false);
    expect((await stack.evidence.list(`servicenow:${number}`)).map((r) => [r.outcome, r.principal?.name])).toEqual([['rejected', manager.name]]);
  });

  it('a mover on an authorized change removes at once, and its privileged addition still waits for approval', async () => {
    const account = uniqueAccount('privm');
    await createAccount(stack.admin, account, ['SELECT ON `cgt\\_billing`.*', 'INSERT ON `cgt_billing`.`invoices`']);
    const number = uniqueTicketNumber();
    const actions = JSON.stringify([{ kind: 'mover', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: ['SELECT ON cgt_billing.*', 'SELECT ON cgt_reporting.*'], ttl: 'PT8H' }]);
    stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: actions });
    await waitFor('removal evidence', async () => (await stack.evidence.list(`servicenow:${number}`)).some((r) => r.outcome === 'ungranted' && r.verified));
    expect((await stack.grantsOf(account)).join('\n')).not.toMatch(/INSERT/);
    const stepId = (await waitingStep(number)).steps[0].stepId as string;
    expect((await stack.grantsOf(account)).join('\n')).not.toMatch(/cgt\\_reporting/);
    expect((await decide(number, stepId, manager.token, { decision: 'approve', justification: 'moves to the reporting team' })).status).toBe(200);
    await waitFor('granted evidence', async () => (await stack.evidence.list(`servicenow:${number}`)).some((r) => r.outcome === 'granted' && r.verified));
    expect((await stack.grantsOf(account)).join('\n')).toMatch(/cgt\\_reporting/);
  });

  it('a justification shaped like a credential is a 400 and records nothing; a step withdrawn from the ticket while it waits needs no decision', async () => {
    const account = uniqueAccount('privw');
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: joiner(account) });
    const stepId = (await waitingStep(number)).steps[0].stepId as string;
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U';
    const leaky = await decide(number, stepId, manager.token, { decision: 'approve', justification: `approved, token ${jwt}` });
    expect(leaky.status).toBe(400);
    expect(JSON.stringify(leaky.data)).not.toContain(jwt);
    expect(await stack.evidence.list(`servicenow:${number}`)).toEqual([]);
    // The action leaves the ticket while it waits: the step is withdrawn, closure is allowed, and no decision is taken.
    stack.sim.updateChange(change.sys_id as string, { u_identity_actions: '[]' });
    await waitFor('closure allowed once the action is withdrawn', async () => (await stack.closureCheck(number)).data.allowed === true);
    expect((await stack.closureCheck(number)).data.steps[0].status).toBe('withdrawn');
    expect((await decide(number, stepId, manager.token, { decision: 'approve', justification: 'late' })).status).toBe(409);
    expect(await stack.accountExists(account)).toBe(false);
  });

  it("the update's validator itself refuses a principal without the change-manager role (defence behind the route)", async () => {
    const account = uniqueAccount('privv');
    const number = uniqueTicketNumber();
    stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: joiner(account) });
    const stepId = (await waitingStep(number)).steps[0].stepId as string;
    const handle = stack.workflows.client.workflow.getHandle(`change-servicenow-${number}`);
    const err = await handle
      .executeUpdate('decideStep', { args: [{ stepId, decision: 'approve', justification: 'x', principal: { actor: { kind: 'token', id: 'x', name: 'x' }, roles: ['auditor'], ticketUsers: [] }, requestedAt: new Date().toISOString() }] })
      .then(() => null, (e: unknown) => e as { cause?: { type?: string; message?: string } });
    expect(err?.cause).toMatchObject({ type: 'Forbidden', message: 'only a change manager decides on privileged grants' });
    expect((await stack.closureCheck(number)).data.steps[0].status).toBe('waiting-approval');
  });
});

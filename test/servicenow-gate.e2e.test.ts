import { GATE_DIGEST_FIELD, GATE_FIELD, identityActionsDigest } from '../src/itsm/servicenow/servicenow-gate';
import { BLOCK_CLOSE_RULE_NAME, BusinessRuleAbortError } from '../src/itsm/servicenow/servicenow-simulator';
import { type Stack, leaverActions, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { TEST_ENV } from './support/test-env';

/**
 * The closure gate end to end: the simulator runs the shipped business rules of integrations/servicenow/ (webhook
 * after rule, invalidate and block-close before rules), the gateway receives the deliveries, the workflow (real
 * Temporal) verifies the steps against real MariaDB and writes the gate back through the Table API.
 */
describe('closure gate on a ServiceNow change, end to end with the shipped business rules', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack.stop();
  });

  const leaver = leaverActions;

  /** A person's save through the Table API, as the form or a REST client sends it. */
  async function save(sysId: string, fields: Record<string, string>): Promise<{ status: number; body: { error?: { message: string; detail: string } } }> {
    const res = await fetch(`${stack.simUrl}/api/now/table/change_request/${sysId}`, {
      method: 'PATCH',
      headers: {
        accept: 'application/json',
        'content-type': 'application/json',
        authorization: `Basic ${Buffer.from(`${TEST_ENV.snUser}:${TEST_ENV.snPassword}`).toString('base64')}`,
      },
      body: JSON.stringify(fields),
    });
    return { status: res.status, body: (await res.json()) as { error?: { message: string; detail: string } } };
  }

  function expectRefusedByBlockClose(reply: { status: number; body: { error?: { message: string; detail: string } } }): void {
    expect(reply.status).toBe(403);
    expect(reply.body.error?.message).toBe('Operation Failed');
    expect(reply.body.error?.detail).toContain(`aborted by Business Rule '${BLOCK_CLOSE_RULE_NAME}^`);
  }

  /** Waits for the gate the gateway writes once the change's leaver of an absent account is verified. */
  async function verifiedLeaverChange(): Promise<{ number: string; sysId: string; actions: string }> {
    const number = uniqueTicketNumber();
    const actions = leaver(uniqueAccount('gone'));
    const sysId = stack.sim.createChange({ number, state: '-1', u_identity_actions: actions }).sys_id as string;
    await waitFor('the gateway to verify the leaver and write the gate', () => stack.sim.getChange(sysId)?.[GATE_FIELD] === 'verified');
    expect(stack.sim.getChange(sysId)?.[GATE_DIGEST_FIELD]).toBe(identityActionsDigest(actions));
    return { number, sysId, actions };
  }

  it('a change without identity actions: the gateway writes not_applicable for its empty actions and the close succeeds', async () => {
    const number = uniqueTicketNumber();
    const sysId = stack.sim.createChange({ number, state: '-1' }).sys_id as string;

    await waitFor('the gateway to write the not_applicable gate', () => stack.sim.getChange(sysId)?.[GATE_FIELD] === 'not_applicable');
    expect(stack.sim.getChange(sysId)?.[GATE_DIGEST_FIELD]).toBe(identityActionsDigest(''));
    expect((await stack.closureCheck(number)).data).toMatchObject({ allowed: true, steps: [] });

    const closed = await save(sysId, { state: '3', close_code: 'successful' });
    expect(closed.status).toBe(200);
    expect(stack.sim.getChange(sysId)?.state).toBe('3');
  });

  it('a change whose joiner waits for approval cannot close: the gate stays pending and the close gets 403', async () => {
    const number = uniqueTicketNumber();
    const sysId = stack.sim.createChange({
      number,
      state: '-3',
      u_identity_actions: JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: uniqueAccount('p'), host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT1H' }]),
    }).sys_id as string;
    await waitFor('the workflow to plan the joiner', async () => (await stack.workflows.status('servicenow', number))?.gate?.value === 'pending');

    expectRefusedByBlockClose(await save(sysId, { state: '3', close_code: 'successful' }));
    expect(stack.sim.getChange(sysId)).toMatchObject({ state: '-3', [GATE_FIELD]: 'pending' });
  });

  it('after verification, a save that edits the identity actions and closes is refused, and nothing of it is applied', async () => {
    const { sysId, actions } = await verifiedLeaverChange();

    expectRefusedByBlockClose(await save(sysId, { u_identity_actions: leaver(uniqueAccount('other')), state: '3' }));
    expect(stack.sim.getChange(sysId)).toMatchObject({ state: '-1', u_identity_actions: actions, [GATE_FIELD]: 'verified' });
  });

  it('after verification, editing the identity actions re-opens the gate until the gateway has verified the new actions', async () => {
    const { number, sysId } = await verifiedLeaverChange();
    const edited = leaver(uniqueAccount('gone2'));

    // Two saves in one synchronous stretch: the gateway cannot have seen the edit before the close is tried.
    stack.sim.updateChange(sysId, { u_identity_actions: edited });
    expect(stack.sim.getChange(sysId)).toMatchObject({ [GATE_FIELD]: 'pending', [GATE_DIGEST_FIELD]: '' });
    expect(() => stack.sim.updateChange(sysId, { state: '3' })).toThrow(BusinessRuleAbortError);

    await waitFor('the gateway to verify the new leaver and write the gate for the new actions', () => stack.sim.getChange(sysId)?.[GATE_DIGEST_FIELD] === identityActionsDigest(edited));
    expect(stack.sim.getChange(sysId)?.[GATE_FIELD]).toBe('verified');
    expect((await stack.evidence.list(`servicenow:${number}`)).map((r) => [r.outcome, r.verified])).toEqual([
      ['revoked', true],
      ['revoked', true],
    ]);
    expect((await save(sysId, { state: '3', close_code: 'successful' })).status).toBe(200);
  });

  it('a verified change whose identity actions are unchanged closes', async () => {
    const { sysId } = await verifiedLeaverChange();

    const closed = await save(sysId, { state: '3', close_code: 'successful' });
    expect(closed.status).toBe(200);
    expect(stack.sim.getChange(sysId)).toMatchObject({ state: '3', active: 'false' });
  });
});

import { type Stack, connectorsFile, createAccount, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';

/**
 * A cancelled change is rolled back as a saga: the undo of each verified step runs one after the other, the newest
 * verification first, each read back from the target and evidenced like the step it reverses.
 */
describe('cancelling or rejecting a change rolls back its verified grants in reverse order of verification', () => {
  let stack: Stack;
  beforeAll(async () => {
    // A second connector instance on the same MariaDB: two systems as far as the gateway is concerned.
    const [local] = connectorsFile().connectors;
    stack = await startStack({ extraConnectors: [{ ...local!, name: 'mysql-second' }] });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('a joiner on two systems, cancelled after both are granted, revokes the second grant (verified and recorded) before the first, and both accounts are gone', async () => {
    const first = uniqueAccount('sgA');
    const second = uniqueAccount('sgB');
    const number = uniqueTicketNumber();
    const joiner = (system: string, name: string) => ({ kind: 'joiner', system, identity: { type: 'service_account', name, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT8H' });
    const change = stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: JSON.stringify([joiner('mysql-local', first), joiner('mysql-second', second)]) });
    const key = `servicenow:${number}`;
    const granted = await waitFor('both grants verified and recorded', async () => {
      const rows = (await stack.evidence.list(key)).filter((r) => r.outcome === 'granted' && r.verified);
      return rows.length === 2 ? rows : null;
    });
    expect(await stack.accountExists(first)).toBe(true);
    expect(await stack.accountExists(second)).toBe(true);

    stack.sim.updateChange(change.sys_id as string, { state: '4' });
    const expired = await waitFor('both revokes recorded', async () => {
      const rows = (await stack.evidence.list(key)).filter((r) => r.outcome === 'expired');
      return rows.length === 2 ? rows : null;
    });

    // Grants in the order they were verified (the evidence row's verifiedAt; the ticket's order breaks a tie);
    // revokes in the order they were recorded (the chain's seq).
    const systems = ['mysql-local', 'mysql-second'];
    const grantOrder = [...granted]
      .sort((x, y) => (x.verifiedAt ?? '').localeCompare(y.verifiedAt ?? '') || systems.indexOf(x.system) - systems.indexOf(y.system))
      .map((r) => r.stepId.replace(/^joiner:/, ''));
    const revokeOrder = [...expired].sort((x, y) => x.seq - y.seq);
    expect(revokeOrder.map((r) => r.stepId.replace(/^expiry:/, ''))).toEqual([...grantOrder].reverse());
    expect(revokeOrder.map((r) => r.verified)).toEqual([true, true]);
    // One after the other: the first grant's revoke starts only once the second's is verified.
    expect(Date.parse(revokeOrder[1]!.startedAt)).toBeGreaterThanOrEqual(Date.parse(revokeOrder[0]!.verifiedAt!));
    expect(revokeOrder.map((r) => r.observedState)).toEqual([expect.objectContaining({ exists: false }), expect.objectContaining({ exists: false })]);

    expect(await stack.accountExists(first)).toBe(false);
    expect(await stack.accountExists(second)).toBe(false);
    const done = await waitFor('workflow completed', async () => {
      const d = await stack.workflows.client.workflow.getHandle(`change-servicenow-${number}`).describe();
      return d.status.name === 'COMPLETED' ? d : null;
    });
    expect(done.status.name).toBe('COMPLETED');
  });

  it('a rejected change (sent back to New) is unauthorized again: its grants are rolled back, newest first and each verified, its revocations stay', async () => {
    const granted = uniqueAccount('rjA');
    const leaver = uniqueAccount('rjL');
    await createAccount(stack.admin, leaver);
    const number = uniqueTicketNumber();
    const actions = [
      { kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name: leaver, host: '%' } },
      { kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: granted, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT8H' },
    ];
    const change = stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: JSON.stringify(actions) });
    const key = `servicenow:${number}`;
    await waitFor('grant and revocation verified', async () => {
      const rows = await stack.evidence.list(key);
      return rows.some((r) => r.outcome === 'granted' && r.verified) && rows.some((r) => r.outcome === 'revoked' && r.verified);
    });
    // ServiceNow's rejection: approval rejected, the change back in New.
    stack.sim.updateChange(change.sys_id as string, { state: '-5', approval: 'rejected' });
    const rolledBack = await waitFor('the grant rolled back', async () => (await stack.evidence.list(key)).find((r) => r.outcome === 'expired'));
    expect(rolledBack).toMatchObject({ verified: true, observedState: expect.objectContaining({ exists: false }) });
    expect(await stack.accountExists(granted)).toBe(false);
    expect(await stack.accountExists(leaver)).toBe(false);
    const check = await waitFor('closure-check showing the rollback', async () => {
      const r = await stack.closureCheck(number);
      return r.data.steps?.find((st: { kind: string }) => st.kind === 'joiner')?.cleanup?.status === 'verified' ? r.data : null;
    });
    expect(check.phase).toBe('rejected');
    expect(check.steps.find((st: { kind: string }) => st.kind === 'leaver')).toMatchObject({ status: 'verified' });
  });
});

import { type Stack, createAccount, leaverActions, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { BusinessRuleAbortError } from '../src/itsm/servicenow/servicenow-simulator';
import { TEST_ENV } from './support/test-env';

describe('leaver on a ServiceNow change, end to end (real Temporal, real MariaDB, simulated ServiceNow)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack.stop();
  });

  const leaver = leaverActions;

  it('revokes the MariaDB account as soon as the ticket arrives, chains the evidence, notes the ticket and allows closure', async () => {
    const account = uniqueAccount();
    await createAccount(stack.admin, account);
    const number = uniqueTicketNumber();
    // A new, unapproved normal change: revoke early does not wait for any state.
    const change = stack.sim.createChange({ number, state: '-5', u_identity_actions: leaver(account) });

    await waitFor('account to be dropped', async () => !(await stack.accountExists(account)));
    const rows = await waitFor('verified evidence', async () => {
      const r = await stack.evidence.list(`servicenow:${number}`);
      return r.length === 1 ? r : null;
    });
    expect(rows[0]).toMatchObject({ outcome: 'revoked', verified: true, actionKind: 'leaver', system: 'mysql-local' });
    expect(rows[0]?.observedState).toMatchObject({ exists: false });
    expect(rows[0]?.prevHash).toBe('0'.repeat(64));
    expect(await stack.evidence.verifyChain(`servicenow:${number}`)).toEqual({ valid: true, rows: 1 });

    const notes = await waitFor('work note on the ticket', () => {
      const j = stack.sim.journal(change.sys_id as string, 'work_notes');
      return j.some((n) => n.value.includes('Verified: leaver')) ? j : null;
    });
    expect(notes.some((n) => n.value.includes(account))).toBe(true);
    await waitFor('gate field set', () => stack.sim.getChange(change.sys_id as string)?.u_identity_cleanup === 'verified');

    // closure-check reads the view the workflow publishes after writing the gate: it follows within moments.
    const check = await waitFor('closure-check allowing closure', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed === true ? r : null;
    });
    expect(check.status).toBe(200);
    expect(check.data).toMatchObject({ allowed: true, reasons: [], evidence: { rows: 1, chainValid: true } });
    expect(check.data.steps).toEqual([expect.objectContaining({ kind: 'leaver', status: 'verified' })]);
  });

  it('revoking an account that is already gone succeeds and says so in the evidence', async () => {
    const number = uniqueTicketNumber();
    const account = uniqueAccount('gone');
    stack.sim.createChange({ number, state: '-1', u_identity_actions: leaver(account) });
    const rows = await waitFor('evidence', async () => {
      const r = await stack.evidence.list(`servicenow:${number}`);
      return r.length === 1 ? r : null;
    });
    expect(rows[0]).toMatchObject({ verified: true, outcome: 'revoked' });
    expect(String(rows[0]?.verification.applied)).toMatch(/already absent/);
  });

  it('closure-check answers false with a reason while the leaver is unverified, then true once it is', async () => {
    const number = uniqueTicketNumber();
    const account = uniqueAccount();
    await createAccount(stack.admin, account);
    // Hold the target: a lock on the account's row keeps the revocation from finishing until released.
    await stack.admin.query('LOCK TABLES mysql.global_priv WRITE');
    let unlocked = false;
    try {
      stack.sim.createChange({ number, state: '-5', u_identity_actions: leaver(account) });
      const blocked = await waitFor('a blocked closure-check', async () => {
        const r = await stack.closureCheck(number);
        return r.status === 200 ? r : null;
      });
      expect(blocked.data.allowed).toBe(false);
      expect(blocked.data.reasons.join(' ')).toMatch(new RegExp(`leaver of ${account}.*not verified yet`));
      await stack.admin.query('UNLOCK TABLES');
      unlocked = true;
      const allowed = await waitFor('closure allowed', async () => {
        const r = await stack.closureCheck(number);
        return r.data.allowed === true ? r : null;
      });
      expect(allowed.data.reasons).toEqual([]);
    } finally {
      if (!unlocked) await stack.admin.query('UNLOCK TABLES');
    }
  });

  it('closing the ticket in ServiceNow before cleanup evidence exists is refused with 403 by the business rule', async () => {
    const number = uniqueTicketNumber();
    // A joiner that never gets authorized keeps the gate unset.
    const change = stack.sim.createChange({
      number,
      state: '-3',
      u_identity_actions: JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'person', name: uniqueAccount('p') }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT1H' }]),
    });
    await waitFor('workflow to exist', async () => (await stack.closureCheck(number)).status === 200);
    const res = await fetch(`${stack.simUrl}/api/now/table/change_request/${change.sys_id}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Basic ${Buffer.from('changegate-int:sn-test-password-42').toString('base64')}` },
      body: JSON.stringify({ state: '3', close_code: 'successful' }),
    });
    expect(res.status).toBe(403);
    const body = (await res.json()) as { error: { message: string; detail: string }; status: string };
    expect(body).toMatchObject({ error: { message: 'Operation Failed' }, status: 'failure' });
    expect(body.error.detail).toMatch(/aborted by Business Rule/);
    expect(stack.sim.getChange(change.sys_id as string)?.state).toBe('-3');
    expect(() => stack.sim.updateChange(change.sys_id as string, { state: '3' })).toThrow(BusinessRuleAbortError);
  });

  it('a repeated delivery (same event id, or same sys_id + sys_mod_count) is acknowledged as a duplicate and starts nothing', async () => {
    const number = uniqueTicketNumber();
    const account = uniqueAccount();
    await createAccount(stack.admin, account);
    const record = { sys_id: 'a'.repeat(24) + Math.random().toString(16).slice(2, 10).padEnd(8, '0'), number, sys_mod_count: '0', state: '-5', approval: 'not requested', type: 'normal', u_identity_actions: leaver(account) };
    const first = await stack.deliver(record, { eventId: `evt-${number}` });
    expect(first.status).toBe(202);
    expect(first.data).toEqual({ workflowId: `change-servicenow-${number}`, duplicate: false });
    const sameEvent = await stack.deliver(record, { eventId: `evt-${number}` });
    expect(sameEvent.status).toBe(202);
    expect(sameEvent.data.duplicate).toBe(true);
    const sameVersion = await stack.deliver(record, { eventId: `evt-${number}-retry` });
    expect(sameVersion.data.duplicate).toBe(true);

    await waitFor('revocation evidence', async () => (await stack.evidence.list(`servicenow:${number}`)).length === 1);
    const status = await stack.workflows.status('servicenow', number);
    expect(status?.deliveries).toBe(1);
    const runs = [];
    for await (const wf of stack.workflows.client.workflow.list({ query: `WorkflowId = 'change-servicenow-${number}'` })) runs.push(wf);
    expect(runs).toHaveLength(1);
  });

  it('an out-of-order delivery (older sys_mod_count) never moves the workflow backwards', async () => {
    const number = uniqueTicketNumber();
    const sysId = 'b'.repeat(24) + Math.random().toString(16).slice(2, 10).padEnd(8, '0');
    const base = { sys_id: sysId, number, approval: 'approved', type: 'normal', u_identity_actions: '' };
    expect((await stack.deliver({ ...base, sys_mod_count: '5', state: '-1' })).status).toBe(202);
    expect((await stack.deliver({ ...base, sys_mod_count: '3', state: '-3' })).status).toBe(202);
    const status = await waitFor('both deliveries seen', async () => {
      const s = await stack.workflows.status('servicenow', number);
      return s && s.deliveries === 2 ? s : null;
    });
    expect(status).toMatchObject({ sourceState: '-1', phase: 'implement', version: 5, ignoredStale: 1 });
  });

  it('a ticket ServiceNow no longer has: the leaver still completes, and closure stays blocked because the notes could not be written', async () => {
    const number = uniqueTicketNumber();
    const account = uniqueAccount();
    await createAccount(stack.admin, account);
    // Delivered directly: the simulator has no record with this sys_id, so every write-back answers 404.
    const record = { sys_id: 'c'.repeat(24) + Math.random().toString(16).slice(2, 10).padEnd(8, '0'), number, sys_mod_count: '0', state: '-5', approval: '', type: 'emergency', u_identity_actions: leaver(account) };
    expect((await stack.deliver(record)).status).toBe(202);
    await waitFor('account dropped', async () => !(await stack.accountExists(account)));
    // The gate's first write (pending) can fail before the step is verified: wait for both.
    const check = await waitFor('closure-check reporting the failed write-back of a verified step', async () => {
      const r = await stack.closureCheck(number);
      const failedWriteBack = r.data.reasons?.some((x: string) => x.startsWith('evidence could not be written'));
      return failedWriteBack && r.data.steps?.[0]?.status === 'verified' ? r : null;
    });
    expect(check.data.allowed).toBe(false);
    expect(check.data.reasons[0]).toMatch(/evidence could not be written to the ticket: No Record found/);
    expect(check.data.steps[0]).toMatchObject({ status: 'verified' });
    const described = await stack.workflows.client.workflow.getHandle(`change-servicenow-${number}`).describe();
    expect(described.status.name).toBe('RUNNING');
  });

  it("evidence rows cannot be updated or deleted: the database refuses the gateway's account its privilege, and anyone else by trigger", async () => {
    const number = uniqueTicketNumber();
    stack.sim.createChange({ number, state: '-5', u_identity_actions: leaver(uniqueAccount('x')) });
    await waitFor('evidence', async () => (await stack.evidence.list(`servicenow:${number}`)).length === 1);
    for (const sql of ['UPDATE evidence_records SET verified = 0 WHERE ticket_key = ?', 'DELETE FROM evidence_records WHERE ticket_key = ?']) {
      await expect(stack.ds.query(sql, [`servicenow:${number}`])).rejects.toMatchObject({ driverError: { code: 'ER_TABLEACCESS_DENIED_ERROR' } });
      await expect(stack.admin.query(sql.replace('evidence_records', `\`${TEST_ENV.database}\`.evidence_records`), [`servicenow:${number}`])).rejects.toThrow(/append-only/);
    }
  });
});

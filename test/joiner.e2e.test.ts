import { type ExpiryHold, startExpiryHold } from './support/held-expiry';
import { type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';

describe('joiner on a ServiceNow change: grant late, verify, expire on a durable timer', () => {
  let stack: Stack;
  /** The run's MariaDB once more, where a test can keep an expiry at the server's door until it has acted. */
  let expiry: ExpiryHold;
  beforeAll(async () => {
    expiry = await startExpiryHold();
    stack = await startStack({ extraConnectors: [expiry.connector] });
  });
  afterAll(async () => {
    await stack?.stop();
    await expiry?.stop();
  });

  const joiner = (name: string, ttl?: string, system = 'mysql-local') =>
    JSON.stringify([{ kind: 'joiner', system, identity: { type: 'service_account', name, host: '%' }, grants: ['SELECT ON cgt_billing.*', 'INSERT ON cgt_billing.invoices'], ...(ttl ? { ttl } : {}) }]);

  it('waits while the change is unapproved or outside Implement, then grants and verifies once it is both', async () => {
    const account = uniqueAccount('join');
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, state: '-3', approval: 'requested', u_identity_actions: joiner(account, 'PT8H') });
    const sysId = change.sys_id as string;

    const waiting = await waitFor('closure-check for the new ticket', async () => {
      const r = await stack.closureCheck(number);
      return r.status === 200 ? r : null;
    });
    expect(waiting.data.steps).toEqual([expect.objectContaining({ kind: 'joiner', status: 'waiting-authorization' })]);
    expect(waiting.data.reasons[0]).toMatch(/waits for the change to be approved and in Implement/);

    // In Implement but not yet approved: still no grant. The view closure-check answers with was computed after the
    // workflow took that delivery: a step it had started would show as running there, not as waiting.
    stack.sim.updateChange(sysId, { state: '-1' });
    const implementing = await waitFor('the Implement delivery in the closure view', async () => {
      const r = await stack.closureCheck(number);
      return r.data.ticketState === '-1' ? r.data : null;
    });
    expect(implementing.steps[0]).toMatchObject({ status: 'waiting-authorization' });
    expect(await stack.accountExists(account)).toBe(false);

    stack.sim.updateChange(sysId, { approval: 'approved' });
    await waitFor('account created', () => stack.accountExists(account));
    const rows = await waitFor('granted evidence', async () => {
      const r = await stack.evidence.list(`servicenow:${number}`);
      return r.find((x) => x.outcome === 'granted') ? r : null;
    });
    expect(rows[0]).toMatchObject({ verified: true, actionKind: 'joiner' });
    expect(rows[0]?.observedState.grants).toEqual(['INSERT ON `cgt_billing`.`invoices`', 'SELECT ON `cgt\\_billing`.*']);
    expect(JSON.stringify(rows)).not.toMatch(/PASSWORD|IDENTIFIED/i);
    expect(await stack.grantsOf(account)).toEqual(
      expect.arrayContaining([expect.stringContaining('GRANT SELECT ON `cgt\\_billing`.*'), expect.stringContaining('GRANT INSERT ON `cgt_billing`.`invoices`')]),
    );

    // The TTL timer is the cleanup path: closure is allowed while the expiry is scheduled.
    const check = await waitFor('closure allowed', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed ? r : null;
    });
    expect(check.data.steps[0].cleanup).toMatchObject({ status: 'scheduled' });
    await waitFor('gate field set on the ticket', () => stack.sim.getChange(sysId)?.u_identity_cleanup === 'verified');
  });

  it.each([
    ['approved but still in Authorize', { state: '-3', approval: 'approved' }],
    ['approved and Scheduled, before its window', { state: '-2', approval: 'approved' }],
    ['that is standard (pre-approved) and still Scheduled', { state: '-2', type: 'standard' }],
  ])('waits on a change %s, and grants once it is in Implement', async (_what, fields) => {
    const account = uniqueAccount('late');
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, ...fields, u_identity_actions: joiner(account, 'PT8H') });
    // The first view is computed once the workflow has taken the delivery: the step waits, no activity ran.
    const first = await waitFor('the first closure view', async () => {
      const r = await stack.closureCheck(number);
      return r.status === 200 && r.data.ticketState === fields.state ? r.data : null;
    });
    expect(first.steps).toEqual([expect.objectContaining({ status: 'waiting-authorization' })]);
    expect(first.reasons).toEqual([expect.stringMatching(/waits for the change to be approved and in Implement/)]);
    expect(first.allowed).toBe(false);
    expect(await stack.accountExists(account)).toBe(false);
    expect(await stack.evidence.list(`servicenow:${number}`)).toEqual([]);
    // The same ticket in Implement (and approved) does grant: the wait above was the phase, nothing else.
    stack.sim.updateChange(change.sys_id as string, { state: '-1', ...('type' in fields ? {} : { approval: 'approved' }) });
    await waitFor('granted in Implement', async () => (await stack.evidence.list(`servicenow:${number}`)).some((r) => r.outcome === 'granted' && r.verified));
    expect(await stack.accountExists(account)).toBe(true);
  });

  it('revokes the grant when the TTL (counted from the grant) ends, and verifies it', async () => {
    const account = uniqueAccount('ttl');
    const number = uniqueTicketNumber();
    stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: joiner(account, 'PT2S') });
    await waitFor('account created', () => stack.accountExists(account));
    await waitFor('account dropped at expiry', async () => !(await stack.accountExists(account)), 20_000);
    const rows = await waitFor('expiry evidence', async () => {
      const r = await stack.evidence.list(`servicenow:${number}`);
      return r.length === 2 ? r : null;
    });
    expect(rows.map((r) => [r.outcome, r.verified])).toEqual([
      ['granted', true],
      ['expired', true],
    ]);
    // Counted from the grant: the expiry starts no earlier than two seconds after the grant was verified.
    expect(Date.parse(rows[1]!.startedAt) - Date.parse(rows[0]!.verifiedAt!)).toBeGreaterThanOrEqual(1900);
    expect(rows[1]?.prevHash).toBe(rows[0]?.hash);
    const check = await waitFor('closure-check reporting the verified expiry', async () => {
      const r = await stack.closureCheck(number);
      return r.data.steps?.[0]?.cleanup?.status === 'verified' ? r : null;
    });
    expect(check.data.steps[0].cleanup).toMatchObject({ status: 'verified' });
    expect(check.data.allowed).toBe(true);
  });

  it('an expiry finds the account someone already removed: nothing to take back, verified absent, and closure allowed', async () => {
    const account = uniqueAccount('gone');
    const number = uniqueTicketNumber();
    // The account exists before the joiner, so its expiry takes back the grants rather than dropping the account.
    await stack.admin.query('CREATE USER ?@? IDENTIFIED BY ?', [account, '%', `pw-${account}`]);
    // Once the workflow has the verified grant, the expiry's statements wait at the target's door: the removal below
    // lands before the expiry looks, however long the machine takes between the grant and the end of the ttl.
    expiry.holdAfterGrant(account, async () => (await stack.workflows.status('servicenow', number))?.steps[0]?.status === 'verified');
    stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: joiner(account, 'PT3S', expiry.system) });
    await waitFor('granted evidence', async () => (await stack.evidence.list(`servicenow:${number}`)).some((r) => r.outcome === 'granted' && r.verified));
    await waitFor('the expiry at the target, held before its first read', () => expiry.held);
    // An administrator removes the account before the expiry reads it.
    await stack.admin.query('DROP USER ?@?', [account, '%']);
    expiry.release();
    const rows = await waitFor('expiry evidence', async () => {
      const r = await stack.evidence.list(`servicenow:${number}`);
      return r.length === 2 ? r : null;
    }, 20_000);
    expect(rows[1]).toMatchObject({ outcome: 'expired', verified: true, desiredState: { exists: false }, observedState: { exists: false } });
    expect(rows[1]?.verification).toMatchObject({ applied: expect.stringMatching(/was already absent$/) });
    const check = await waitFor('closure-check reporting the verified expiry', async () => {
      const r = await stack.closureCheck(number);
      return r.data.steps?.[0]?.cleanup?.status === 'verified' ? r : null;
    });
    expect(check.data.allowed).toBe(true);
  });

  it('a grant until the ticket closes is taken back when the change moves to Review, and closure waits until that is verified', async () => {
    const account = uniqueAccount('utc');
    const number = uniqueTicketNumber();
    const actions = JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: ['SELECT ON cgt_billing.*'], until: 'ticket-closed' }]);
    const change = stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: actions });
    const sysId = change.sys_id as string;
    const granted = await waitFor('the grant verified', async () => {
      const r = await stack.closureCheck(number);
      return r.data.steps?.[0]?.status === 'verified' ? r.data : null;
    });
    // The access still exists: closure is not allowed while its take-back is due.
    expect(granted.allowed).toBe(false);
    expect(granted.steps[0].cleanup).toEqual({ status: 'scheduled', until: 'ticket-closed', endsAtReview: true });
    expect(granted.reasons).toEqual([
      `joiner of ${account}@% on mysql-local lasts until the change leaves Implement: it is taken back when the change moves to Review, and closure waits until that is verified`,
    ]);
    expect(await stack.accountExists(account)).toBe(true);
    expect(stack.sim.getChange(sysId)?.u_identity_cleanup).not.toBe('verified');
    const note = await waitFor('the grant work note', () => stack.sim.journal(sysId, 'work_notes').find((n) => n.value.includes('Verified: joiner')));
    expect(note.value).toContain('Ends when the change moves to Review or closes; closure waits until it is taken back and verified.');
    // Implement → Review: the grant is taken back; closure is allowed once that is verified, not before.
    stack.sim.updateChange(sysId, { state: '0' });
    const check = await waitFor('closure allowed after the take-back', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed ? r.data : null;
    });
    expect(check.steps[0].cleanup).toMatchObject({ status: 'verified', until: 'ticket-closed' });
    const expired = (await stack.evidence.list(`servicenow:${number}`)).find((r) => r.outcome === 'expired');
    expect(expired).toMatchObject({ verified: true, observedState: expect.objectContaining({ exists: false }) });
    expect(Date.parse(check.steps[0].cleanup.verifiedAt)).toBeGreaterThanOrEqual(Date.parse(expired!.verifiedAt!));
    expect(await stack.accountExists(account)).toBe(false);
    await waitFor('gate set on the ticket', () => stack.sim.getChange(sysId)?.u_identity_cleanup === 'verified');
  });

  it("a grant until the change window's end is taken back at the ServiceNow end_date, and verified", async () => {
    const account = uniqueAccount('uwe');
    const number = uniqueTicketNumber();
    const end = new Date(Date.now() + 3_000).toISOString().slice(0, 19).replace('T', ' ');
    const actions = JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: ['SELECT ON cgt_billing.*'], until: 'window-end' }]);
    stack.sim.createChange({ number, state: '-1', approval: 'approved', end_date: end, u_identity_actions: actions });
    const check = await waitFor('closure allowed with the window end scheduled', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed ? r.data : null;
    });
    expect(check.steps[0].cleanup).toMatchObject({ status: 'scheduled', until: 'window-end', expiresAt: `${end.replace(' ', 'T')}.000Z` });
    const rows = await waitFor('expiry evidence at the window end', async () => {
      const r = await stack.evidence.list(`servicenow:${number}`);
      return r.some((x) => x.outcome === 'expired') ? r : null;
    }, 20_000);
    expect(rows.find((r) => r.outcome === 'expired')).toMatchObject({ verified: true });
    expect(Date.parse(rows.find((r) => r.outcome === 'expired')!.startedAt)).toBeGreaterThanOrEqual(Date.parse(`${end.replace(' ', 'T')}Z`));
    expect(await stack.accountExists(account)).toBe(false);
  });

  it('a grant until the window end on a change without an end date has no cleanup path, and closure says so', async () => {
    const account = uniqueAccount('uwn');
    const number = uniqueTicketNumber();
    const actions = JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: ['SELECT ON cgt_billing.*'], until: 'window-end' }]);
    stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: actions });
    const check = await waitFor('the grant verified', async () => {
      const r = await stack.closureCheck(number);
      return r.data.steps?.[0]?.status === 'verified' ? r.data : null;
    });
    expect(check.allowed).toBe(false);
    expect(check.reasons[0]).toMatch(/has no cleanup path \(it is to end with the change window, but the change has no end date\)/);
  });

  it('two tickets granting the same access: when the first ends, the access stays while the second holds it, and the evidence says so', async () => {
    const account = uniqueAccount('ovl');
    await stack.admin.query('CREATE USER ?@? IDENTIFIED BY ?', [account, '%', `pw-${account}`]);
    const grant = (ttl: string) => JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl }]);
    const first = uniqueTicketNumber();
    const second = uniqueTicketNumber();
    stack.sim.createChange({ number: second, state: '-1', approval: 'approved', u_identity_actions: grant('PT8H') });
    await waitFor('the second ticket holding the grant', async () => (await stack.evidence.list(`servicenow:${second}`)).some((r) => r.outcome === 'granted' && r.verified));
    stack.sim.createChange({ number: first, state: '-1', approval: 'approved', u_identity_actions: grant('PT2S') });
    const expired = await waitFor('the first ticket ending', async () => (await stack.evidence.list(`servicenow:${first}`)).find((r) => r.outcome === 'expired'), 20_000);
    expect(expired).toMatchObject({ verified: true, desiredState: { exists: true, mustHave: ['SELECT ON `cgt\\_billing`.*'] } });
    expect(expired.verification).toMatchObject({ applied: expect.stringContaining(`kept: SELECT ON \`cgt\\_billing\`.* still held by servicenow:${second}`) });
    expect((await stack.grantsOf(account)).join('\n')).toMatch(/GRANT SELECT ON `cgt\\_billing`\.\*/);
  });

  it('a grant with neither a ttl nor an until is refused at planning where no policy allows standing access, and nothing is granted', async () => {
    const account = uniqueAccount('nottl');
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, state: '-1', type: 'standard', u_identity_actions: joiner(account) });
    const sysId = change.sys_id as string;
    await waitFor('the refused delivery', () => stack.sim.deliveries.some((d) => d.sysId === sysId && d.status === 400));
    const res = await stack.deliver({ ...stack.sim.getChange(sysId), sys_mod_count: '0' });
    expect(res.status).toBe(400);
    expect(res.data.error.issues).toEqual(
      ['SELECT ON `cgt\\_billing`.*', 'INSERT ON `cgt_billing`.`invoices`'].map((grant, i) => ({
        path: `u_identity_actions[0].grants[${i}]`,
        message: `${grant} (no class) has no cleanup path: no privilege class on mysql-local covers it; give the action a ttl or an until, or use a policy that allows standing access to it for service_account identities`,
      })),
    );
    expect(await stack.accountExists(account)).toBe(false);
    expect(await stack.evidence.list(`servicenow:${number}`)).toEqual([]);
    expect(await stack.workflows.status('servicenow', number)).toBeNull();
  });

  it('cancelling the change revokes what it granted at once, without waiting for the TTL', async () => {
    const account = uniqueAccount('cxl');
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: joiner(account, 'PT8H') });
    await waitFor('account created', () => stack.accountExists(account));
    await waitFor('grant verified', async () => (await stack.evidence.list(`servicenow:${number}`)).some((r) => r.outcome === 'granted'));
    stack.sim.updateChange(change.sys_id as string, { state: '4' });
    await waitFor('account dropped after cancellation', async () => !(await stack.accountExists(account)));
    const result = await waitFor('workflow completed', async () => {
      const d = await stack.workflows.client.workflow.getHandle(`change-servicenow-${number}`).describe();
      return d.status.name === 'COMPLETED' ? d : null;
    });
    expect(result.status.name).toBe('COMPLETED');
  });
});

import { MockActivityEnvironment } from '@temporalio/testing';
import axios from 'axios';
import { createTicketLifecycleActivities } from '../activities';
import { writeBacks } from '../src/itsm/registry';
import { ServiceNowClient } from '../src/itsm/servicenow/servicenow-client';
import { GATE_DIGEST_FIELD, GATE_FIELD, identityActionsDigest } from '../src/itsm/servicenow/servicenow-gate';
import { DEFAULT_STATE_PHASES } from '../src/itsm/servicenow/servicenow-phase';
import { BLOCK_CLOSE_RULE_NAME } from '../src/itsm/servicenow/servicenow-simulator';
import { type Stack, createAccount, leaverActions, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { TEST_ENV } from './support/test-env';

/**
 * ServiceNow as a real instance runs the integration: deliveries get lost or arrive late and are never retried, the
 * instance has states of its own, field ACLs drop writes with a 200, an administrator may not have installed the
 * block-close rule. The simulator runs the shipped rules; the gateway, its worker (real Temporal) and MariaDB are
 * real. The stack maps a custom state 7 to closed (and the instance lists it as closed-like); state 12 is mapped by
 * nobody.
 */
describe('ServiceNow as an instance runs it, end to end', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ servicenowSettings: { statePhases: { ...DEFAULT_STATE_PHASES, '7': 'closed' } }, sourceCheckTtlMs: 0 });
    stack.sim.setProperty('x_changegate.closed_states', '3,7');
  });
  afterAll(async () => {
    await stack.stop();
  });

  const basic = () => `Basic ${Buffer.from(`${TEST_ENV.snUser}:${TEST_ENV.snPassword}`).toString('base64')}`;

  /** A person's save through the Table API, as the form or a REST client sends it. */
  async function save(sysId: string, fields: Record<string, string>): Promise<{ status: number; body: { error?: { message: string; detail: string } } }> {
    const res = await fetch(`${stack.simUrl}/api/now/table/change_request/${sysId}`, {
      method: 'PATCH',
      headers: { accept: 'application/json', 'content-type': 'application/json', authorization: basic() },
      body: JSON.stringify(fields),
    });
    return { status: res.status, body: (await res.json()) as { error?: { message: string; detail: string } } };
  }

  const notes = (sysId: string) => stack.sim.journal(sysId, 'work_notes').map((n) => n.value);
  const deliveriesOf = (sysId: string) => stack.sim.deliveries.filter((d) => d.sysId === sysId);

  it('a delivery lost while the gateway was unreachable is picked up by reconciliation and its leaver runs', async () => {
    const account = uniqueAccount('lost');
    await createAccount(stack.admin, account);
    const number = uniqueTicketNumber();
    stack.sim.setProperty('x_changegate.webhook_url', 'http://127.0.0.1:9/webhooks/servicenow');
    let sysId: string;
    try {
      sysId = stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: leaverActions(account) }).sys_id as string;
      await stack.sim.waitForDeliveries();
    } finally {
      stack.sim.setProperty('x_changegate.webhook_url', `${stack.apiUrl}/webhooks/servicenow`);
    }
    expect(deliveriesOf(sysId)).toEqual([expect.objectContaining({ status: 'error' })]);
    expect(await stack.workflows.status('servicenow', number)).toBeNull();
    expect(await stack.accountExists(account)).toBe(true);

    const pass = await stack.reconcile();
    expect(pass.ran).toBe(true);
    expect(pass.accepted).toBeGreaterThanOrEqual(1);

    await waitFor('the reconciled leaver to remove the account and the gate to be verified', async () => !(await stack.accountExists(account)) && stack.sim.getChange(sysId)?.[GATE_FIELD] === 'verified');
    expect((await stack.evidence.list(`servicenow:${number}`)).map((r) => [r.outcome, r.verified])).toEqual([['revoked', true]]);

    // The gateway's own gate write made a version no webhook sends: the next pass hands it over, and the one after
    // that finds only versions already handed over (duplicates), so nothing runs twice.
    await stack.reconcile();
    const settled = await stack.reconcile();
    expect(settled).toMatchObject({ ran: true, accepted: 0 });
    expect(settled.duplicates).toBeGreaterThanOrEqual(1);
    expect((await stack.evidence.list(`servicenow:${number}`)).map((r) => [r.outcome, r.verified])).toEqual([['revoked', true]]);
  });

  it('a delivery the instance sent late is refused as a replay, then picked up by reconciliation', async () => {
    const account = uniqueAccount('late');
    await createAccount(stack.admin, account);
    const number = uniqueTicketNumber();
    // The ECC queue held the request for ten minutes: its timestamp is older than the replay window when it arrives.
    stack.sim.setClockOffset(-10 * 60_000);
    let sysId: string;
    try {
      sysId = stack.sim.createChange({ number, state: '-1', approval: 'approved', short_description: 'Zugang für Jürgen', u_identity_actions: leaverActions(account) }).sys_id as string;
      await stack.sim.waitForDeliveries();
    } finally {
      stack.sim.setClockOffset(0);
    }
    expect(deliveriesOf(sysId)).toEqual([expect.objectContaining({ status: 401 })]);
    expect(await stack.workflows.status('servicenow', number)).toBeNull();

    await stack.reconcile();
    await waitFor('the reconciled leaver to be verified', async () => (await stack.workflows.status('servicenow', number))?.steps[0]?.status === 'verified');
    expect(await stack.accountExists(account)).toBe(false);
  });

  it('a change with non-ASCII text is delivered by the shipped rule and accepted', async () => {
    const sysId = stack.sim.createChange({ number: uniqueTicketNumber(), state: '-1', short_description: 'Zugang für Jürgen – 東京 😀' }).sys_id as string;
    await stack.sim.waitForDeliveries();
    expect(deliveriesOf(sysId)).toEqual([expect.objectContaining({ status: 202 })]);
  });

  it('invalid identity actions are told to the requester in a work note listing each problem and its path, once per version', async () => {
    const number = uniqueTicketNumber();
    const actions = JSON.stringify([
      { kind: 'leaver', system: 'no-such-system', identity: { type: 'service_account', name: 'svc_x', host: '%' } },
      { kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: 'svc_y', host: '%' }, grants: ['FLY ON cgt_billing.*'], ttl: 'PT1H' },
    ]);
    const change = stack.sim.createChange({ number, state: '-1', u_identity_actions: actions });
    const sysId = change.sys_id as string;
    await stack.sim.waitForDeliveries();
    expect(deliveriesOf(sysId)).toEqual([expect.objectContaining({ status: 400 })]);

    // The same record again (as reconciliation or a second copy would bring it): the same 400, no second note.
    const reply = await stack.deliver({ ...stack.sim.getChange(sysId), u_identity_actions: actions });
    expect(reply.status).toBe(400);
    const issues = (reply.data as { error: { issues: Array<{ path: string; message: string }> } }).error.issues;
    expect(issues.length).toBeGreaterThanOrEqual(2);

    const written = await waitFor('the note telling the requester what is wrong', () => notes(sysId).find((n) => n.includes('[changegate invalid:0]')));
    for (const issue of issues) expect(written).toContain(`- ${issue.path}: ${issue.message}`);
    expect(written).toMatch(/u_identity_actions\[0\]/);
    expect(written).toMatch(/u_identity_actions\[1\]/);
    expect(notes(sysId).filter((n) => n.includes('[changegate invalid:0]'))).toHaveLength(1);
    expect(await stack.workflows.status('servicenow', number)).toBeNull();
  });

  it('a state no configuration maps is accepted as unknown and noted on the ticket: revocations run, grants wait', async () => {
    const account = uniqueAccount('unk');
    await createAccount(stack.admin, account);
    const number = uniqueTicketNumber();
    const actions = JSON.stringify([
      ...JSON.parse(leaverActions(account)),
      { kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: uniqueAccount('unkj'), host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT1H' },
    ]);
    const sysId = stack.sim.createChange({ number, state: '12', approval: 'approved', u_identity_actions: actions }).sys_id as string;
    await stack.sim.waitForDeliveries();
    expect(deliveriesOf(sysId)).toEqual([expect.objectContaining({ status: 202 })]);

    await waitFor('the leaver to remove the account', async () => !(await stack.accountExists(account)));
    const status = await waitFor('the workflow to have planned both steps', async () => {
      const s = await stack.workflows.status('servicenow', number);
      return s?.steps.length === 2 && s.steps[0].status === 'verified' ? s : null;
    });
    expect(status.phase).toBe('unknown');
    expect(status.steps.map((s) => s.status)).toEqual(['verified', 'waiting-authorization']);
    const note = await waitFor('the note saying the state is not mapped', () => notes(sysId).find((n) => n.includes('[changegate state-unmapped:12:')));
    expect(note).toContain('State 12 is not mapped');
    const check = await stack.closureCheck(number);
    expect(check.data).toMatchObject({ allowed: false, phase: 'unknown' });
  });

  it('a custom closed-like state is gated by the block-close rule, and maps to closed once cleanup is verified', async () => {
    const number = uniqueTicketNumber();
    const actions = leaverActions(uniqueAccount('gone'));
    const pendingSysId = stack.sim.createChange({
      number: uniqueTicketNumber(),
      state: '-3',
      u_identity_actions: JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: uniqueAccount('p'), host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT1H' }]),
    }).sys_id as string;
    const refused = await save(pendingSysId, { state: '7' });
    expect(refused.status).toBe(403);
    expect(refused.body.error?.detail).toContain(`aborted by Business Rule '${BLOCK_CLOSE_RULE_NAME}^`);

    const sysId = stack.sim.createChange({ number, state: '-1', u_identity_actions: actions }).sys_id as string;
    await waitFor('the gate to be verified', () => stack.sim.getChange(sysId)?.[GATE_FIELD] === 'verified');
    expect((await save(sysId, { state: '7' })).status).toBe(200);
    await waitFor('the workflow to see the change closed', async () => (await stack.workflows.status('servicenow', number))?.phase === 'closed');
  });

  it('a gate write a field ACL silently drops shows on closure-check as a refused write-back', async () => {
    const number = uniqueTicketNumber();
    stack.sim.denyFieldWrite([GATE_FIELD, GATE_DIGEST_FIELD]);
    try {
      const sysId = stack.sim.createChange({ number, state: '-1', u_identity_actions: leaverActions(uniqueAccount('acl')) }).sys_id as string;
      const check = await waitFor('closure-check to report the dropped gate write', async () => {
        const res = await stack.closureCheck(number);
        const reasons = (res.data as { reasons?: string[] }).reasons ?? [];
        return reasons.some((r) => r.includes('reads back as')) ? res.data : null;
      });
      expect(check).toMatchObject({ allowed: false });
      expect((check as { reasons: string[] }).reasons.join('\n')).toContain(`${GATE_FIELD} reads back as "pending" instead of "verified"`);
      expect(stack.sim.getChange(sysId)?.[GATE_FIELD]).toBe('pending');
    } finally {
      stack.sim.denyFieldWrite([]);
    }
  });

  it('a change closed without the block-close rule is reopened to Review with a work note listing the reasons', async () => {
    const number = uniqueTicketNumber();
    // A grant on a table that does not exist: the target refuses it, the step fails, and closure stays unproven.
    const actions = JSON.stringify([
      { kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: uniqueAccount('ro'), host: '%' }, grants: ['SELECT ON cgt_billing.no_such_table'], ttl: 'PT1H' },
    ]);
    stack.sim.setRuleActive(BLOCK_CLOSE_RULE_NAME, false);
    try {
      const sysId = stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: actions }).sys_id as string;
      await waitFor('the joiner to fail', async () => (await stack.workflows.status('servicenow', number))?.steps[0]?.status === 'failed', 60_000);

      expect((await save(sysId, { state: '3', close_code: 'successful' })).status).toBe(200);

      await waitFor('the gateway to reopen the change', () => stack.sim.getChange(sysId)?.state === '0');
      const note = notes(sysId).find((n) => n.includes('[changegate reopen:'));
      expect(note).toContain('has been reopened');
      expect(note).toMatch(/- joiner of .* failed: /);
      // The reopened change reaches the workflow (the webhook fires on the state change), which keeps running.
      await waitFor('the workflow to see the change in Review', async () => (await stack.workflows.status('servicenow', number))?.phase === 'review');
      expect(notes(sysId).filter((n) => n.includes('[changegate reopen:'))).toHaveLength(1);
    } finally {
      stack.sim.setRuleActive(BLOCK_CLOSE_RULE_NAME, true);
    }
  });

  it('once cleanup is verified the evidence bundle is attached to the ticket exactly once, also when the attachment is tried again', async () => {
    const number = uniqueTicketNumber();
    const actions = leaverActions(uniqueAccount('evid'));
    const sysId = stack.sim.createChange({ number, state: '-1', u_identity_actions: actions }).sys_id as string;
    await waitFor('the gate to be verified', () => stack.sim.getChange(sysId)?.[GATE_FIELD] === 'verified');
    const fileName = `changegate-evidence-${number}-${identityActionsDigest(actions).slice(0, 12)}.json`;
    const [attached] = await waitFor('the evidence bundle attachment', () => (stack.sim.attachments(sysId).length > 0 ? stack.sim.attachments(sysId) : null));
    expect(attached).toMatchObject({ file_name: fileName, content_type: 'application/json', table_name: 'change_request' });
    const bundle = JSON.parse(attached.content.toString('utf8')) as { ticket: string; chain: { valid: boolean }; rows: Array<{ outcome: string }> };
    expect(bundle).toMatchObject({ ticket: number, chain: { valid: true } });
    expect(bundle.rows.map((r) => r.outcome)).toEqual(['revoked']);

    // The activity's next attempt (as Temporal retries it after a lost answer) finds the file and adds none.
    const client = new ServiceNowClient({ baseUrl: stack.simUrl, username: TEST_ENV.snUser, password: TEST_ENV.snPassword });
    const activities = createTicketLifecycleActivities({ writeBackFor: writeBacks({ servicenow: client }), evidence: stack.evidence });
    const retried = await new MockActivityEnvironment({ attempt: 2 }).run(activities.attachEvidenceBundle, { ticket: { source: 'servicenow', key: number, recordId: sysId }, fileName });
    expect(retried).toEqual({ attached: false, rows: 1 });
    expect(stack.sim.attachments(sysId)).toHaveLength(1);

    // A later save (a work note) does not attach it again either.
    stack.sim.updateChange(sysId, { work_notes: 'checked by the CAB' });
    stack.sim.updateChange(sysId, { state: '0' });
    await waitFor('the workflow to see the change in Review', async () => (await stack.workflows.status('servicenow', number))?.phase === 'review');
    expect(stack.sim.attachments(sysId)).toHaveLength(1);
  });

  it('/readyz fails, naming sys_journal_field, while the integration user cannot read it', async () => {
    const ready = await axios.get(`${stack.apiUrl}/readyz`, { validateStatus: () => true });
    expect(ready.status).toBe(200);
    expect(ready.data).toMatchObject({ status: 'ready', sources: { servicenow: 'ok' } });

    stack.sim.denyJournalRead(true);
    try {
      const denied = await axios.get(`${stack.apiUrl}/readyz`, { validateStatus: () => true });
      expect(denied.status).toBe(503);
      expect(denied.data.status).toBe('not-ready');
      expect(denied.data.sources.servicenow).toMatch(/cannot read sys_journal_field \(HTTP 403: .*INSTALL\.md step 5/);
    } finally {
      stack.sim.denyJournalRead(false);
    }
    expect((await axios.get(`${stack.apiUrl}/readyz`, { validateStatus: () => true })).status).toBe(200);
  });
});

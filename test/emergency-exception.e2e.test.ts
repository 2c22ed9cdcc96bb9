import { createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import axios from 'axios';
import { GATE_PROPERTY } from '../src/itsm/jira/jira-settings';
import { ACTIONS_FIELD, CHANGE_TYPE_FIELD } from '../src/itsm/jira/jira-simulator';
import { type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';

/**
 * Emergency changes act first and are reviewed after: a grant the policy allows before authorization is made at once,
 * opens an exception (ledger, review task, note) that keeps the ticket from closing, and a security reviewer — never
 * the change's requester or implementer — accepts or revokes it; with no decision, the policy escalates and then
 * applies its default. Real Temporal, MariaDB (target and ledger) and the ServiceNow simulator.
 */
const REQUESTER = randomBytes(16).toString('hex');
const IMPLEMENTER = randomBytes(16).toString('hex');
const people = [
  { source: 'servicenow', user: REQUESTER, principal: 'requester-*' },
  { source: 'servicenow', user: IMPLEMENTER, principal: 'implementer-*' },
];
const joiner = (name: string) =>
  JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'person', name, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT8H' }]);
const GRANT = 'SELECT ON `cgt\\_billing`.*';

async function exceptionOf(stack: Stack, number: string, status?: string) {
  return waitFor(`the exception of ${number}${status ? ` ${status}` : ''}`, async () => {
    const r = await stack.closureCheck(number);
    const e = r.data.steps?.[0]?.exception;
    return e?.id && (status === undefined || e.status === status) ? { check: r.data, exception: e } : null;
  });
}

describe('emergency exceptions: a grant before authorization, reviewed after the fact', () => {
  let stack: Stack;
  let reviewer: { name: string; token: string };
  const tokens: Record<string, string> = {};
  beforeAll(async () => {
    stack = await startStack({
      policy: {
        version: 1,
        people,
        emergency: [{ system: 'mysql-local', kinds: ['joiner'] }],
        exceptions: { window: 'PT1H', escalateAfter: 0.5, onDeadline: 'revoke', reviewGroup: 'Security Review' },
      },
    });
    reviewer = await stack.tokenFor('security-reviewer');
    tokens.auditor = (await stack.tokenFor('auditor')).token;
    tokens.manager = (await stack.tokenFor('change-manager')).token;
    tokens.requester = (await stack.tokens.create(`requester-${randomBytes(4).toString('hex')}`, ['security-reviewer'], 'test')).token;
    tokens.implementer = (await stack.tokens.create(`implementer-${randomBytes(4).toString('hex')}`, ['security-reviewer'], 'test')).token;
  });
  afterAll(async () => {
    await stack.stop();
  });

  const decide = (id: string, token: string, body: unknown) =>
    axios.post(`${stack.apiUrl}/api/exceptions/${id}/decision`, body, { headers: { authorization: `Bearer ${token}` }, validateStatus: () => true });
  const queue = (token: string, query = '') => axios.get(`${stack.apiUrl}/api/exceptions${query}`, { headers: { authorization: `Bearer ${token}` }, validateStatus: () => true });

  it('grants at once, blocks closure with a review task and a queue item, refuses the wrong deciders, and a revoke takes the grant back', async () => {
    const account = uniqueAccount('emer');
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, type: 'emergency', state: '-3', requested_by: REQUESTER, assigned_to: IMPLEMENTER, u_identity_actions: joiner(account) });
    const sysId = change.sys_id as string;
    const { check, exception } = await exceptionOf(stack, number, 'open');
    // Granted before the change was authorized (it stands in Authorize), and verified on the target.
    expect(check.steps[0]).toMatchObject({ status: 'verified' });
    expect((await stack.grantsOf(account)).join('\n')).toContain('`cgt\\_billing`');
    expect(exception).toMatchObject({ id: expect.stringMatching(/^EXC-[0-9A-F]{16}$/), grants: [GRANT], onDeadline: 'revoke' });
    expect(Date.parse(exception.deadline) - Date.parse(exception.grantedAt)).toBe(3_600_000);
    expect(Date.parse(exception.escalateAt) - Date.parse(exception.grantedAt)).toBe(1_800_000);
    expect(check.allowed).toBe(false);
    expect(check.reasons.join('\n')).toContain(`emergency exception ${exception.id} waits for a security reviewer's decision`);

    // ServiceNow's after-the-fact pattern: a Post Implementation Review task for the configured group.
    const task = await waitFor('the review task', () => stack.sim.tasks(sysId)[0]);
    expect(task).toMatchObject({ change_task_type: 'review', short_description: 'Post Implementation Review', assignment_group: 'Security Review', state: '1', correlation_id: `changegate-${exception.id}` });
    expect(task.description).toContain(exception.id);
    await waitFor('the exception note', () => stack.sim.journal(sysId, 'work_notes').find((n) => n.value.includes(`Emergency exception ${exception.id}:`)));

    // The queue, as a security reviewer and an auditor see it: the ledger row, time left, and the target read back now.
    const listed = await queue(reviewer.token, '?status=undecided&source=servicenow&system=mysql-local&limit=200');
    expect(listed.status).toBe(200);
    const item = listed.data.items.find((i: { id: string }) => i.id === exception.id);
    expect(item).toMatchObject({
      source: 'servicenow', ticket: number, system: 'mysql-local', grants: [GRANT], requester: REQUESTER, implementer: IMPLEMENTER, status: 'open', overdue: false,
      identity: { name: account }, current: { exists: true, stillGranted: [GRANT] },
    });
    expect(item.timeLeftMs).toBeGreaterThan(3_000_000);
    expect((await queue(tokens.auditor, `?overdue=true&limit=200`)).data.items.map((i: { id: string }) => i.id)).not.toContain(exception.id);
    expect((await queue(tokens.auditor, '?status=maybe')).status).toBe(400);
    expect((await queue(tokens.auditor, '?colour=red')).data.error.issues[0].message).toMatch(/unknown filter 'colour'/);

    // Who may not decide, and what is not a decision: nothing of it reaches the evidence or the target.
    const before = (await stack.evidence.list(`servicenow:${number}`)).length;
    expect((await decide(exception.id, tokens.auditor, { decision: 'accept', justification: 'x' })).status).toBe(403);
    expect((await decide(exception.id, tokens.manager, { decision: 'accept', justification: 'x' })).status).toBe(403);
    const self = await decide(exception.id, tokens.requester, { decision: 'accept', justification: 'it was needed' });
    expect([self.status, self.data.error.message]).toEqual([403, 'the requester of the change may not decide on its emergency exception']);
    const impl = await decide(exception.id, tokens.implementer, { decision: 'accept', justification: 'it was needed' });
    expect([impl.status, impl.data.error.message]).toEqual([403, 'the implementer of the change may not decide on its emergency exception']);
    expect((await decide('EXC-0000000000000000', reviewer.token, { decision: 'accept', justification: 'x' })).status).toBe(404);
    expect((await decide('EXC-12', reviewer.token, { decision: 'accept', justification: 'x' })).data.error.issues).toEqual([{ path: 'path.id', message: expect.stringMatching(/exception id/) }]);
    const blank = await decide(exception.id, reviewer.token, { decision: 'revoke', justification: '  ' });
    expect([blank.status, blank.data.error.message]).toEqual([400, 'justification: a decision needs one']);
    const odd = await decide(exception.id, reviewer.token, { decision: 'maybe', justification: 'x' });
    expect([odd.status, odd.data.error.issues[0].path]).toEqual([400, 'decision']);
    // A justification canonical JSON cannot hold (an unpaired surrogate) is refused as the evidence store refuses it.
    const lone = await decide(exception.id, reviewer.token, { decision: 'accept', justification: 'ok \ud800' });
    expect([lone.status, lone.data.error.message]).toEqual([400, expect.stringMatching(/^justification: refusing to record evidence: .*unpaired UTF-16 surrogate/)]);
    expect((await stack.evidence.list(`servicenow:${number}`)).length).toBe(before);
    expect((await stack.grantsOf(account)).join('\n')).toContain('`cgt\\_billing`');

    const revoked = await decide(exception.id, reviewer.token, { decision: 'revoke', justification: 'no incident justified billing access' });
    expect(revoked.status).toBe(200);
    expect(revoked.data).toEqual({ exceptionId: exception.id, decision: 'revoke', status: 'revoking', evidenceHash: expect.stringMatching(/^[0-9a-f]{64}$/) });
    const done = await waitFor('closure allowed after the revoke', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed ? r.data : null;
    });
    expect(done.steps[0].exception).toMatchObject({ status: 'revoked', decision: { decision: 'revoke', byPolicy: false, by: { name: reviewer.name } }, outcome: expect.stringMatching(/^taken back and verified/) });
    // The joiner created the account, so the take-back removed it: read back as the target's administrator.
    expect(await stack.accountExists(account)).toBe(false);
    const closedTask = await waitFor('the review task closed', () => stack.sim.tasks(sysId).find((t) => t.state === '3'));
    expect(closedTask).toMatchObject({ close_code: 'unsuccessful', close_notes: expect.stringContaining('no incident justified billing access') });
    await waitFor('the revoke note', () => stack.sim.journal(sysId, 'work_notes').find((n) => n.value.includes(`Emergency exception ${exception.id} revoked by ${reviewer.name}`)));
    const rows = await stack.evidence.list(`servicenow:${number}`);
    expect(rows.map((r) => r.outcome)).toEqual(['granted', 'exception-opened', 'exception-revoked', 'expired']);
    expect(rows[2]).toMatchObject({ principal: { kind: 'token', name: reviewer.name }, verification: { decision: 'revoke', byPolicy: false } });
    expect(await stack.evidence.verifyChain(`servicenow:${number}`)).toEqual({ valid: true, rows: 4 });
    const again = await decide(exception.id, reviewer.token, { decision: 'accept', justification: 'second thoughts' });
    expect([again.status, again.data.error.message]).toEqual([409, expect.stringMatching(new RegExp(`${exception.id} is already decided`))]);
    const ledger = await waitFor('the ledger row revoked', async () =>
      (await queue(tokens.auditor, '?status=decided&limit=200')).data.items.find((i: { id: string; status: string }) => i.id === exception.id && i.status === 'revoked'));
    expect(ledger).toMatchObject({ status: 'revoked', timeLeftMs: null, decision: { decision: 'revoke', byPolicy: false }, outcome: expect.stringMatching(/^taken back and verified/), current: { exists: false } });
  });

  it('an accepted exception keeps the grant under its ttl, closes the review task successful and lets the change close', async () => {
    const account = uniqueAccount('emacc');
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, type: 'emergency', state: '-3', requested_by: REQUESTER, u_identity_actions: joiner(account) });
    const { exception } = await exceptionOf(stack, number, 'open');
    expect((await decide(exception.id, reviewer.token, { decision: 'accept', justification: 'incident INC0042 needed it' })).status).toBe(200);
    const done = await waitFor('closure allowed after the accept', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed ? r.data : null;
    });
    // The gate opened no earlier than the review task's close: both were in the delivery closure-check learnt it from.
    expect(stack.sim.tasks(change.sys_id as string)).toEqual([expect.objectContaining({ state: '3', close_code: 'successful', close_notes: expect.stringContaining('incident INC0042 needed it') })]);
    expect(done.steps[0]).toMatchObject({ status: 'verified', cleanup: { status: 'scheduled' }, exception: { status: 'accepted' } });
    expect((await stack.grantsOf(account)).join('\n')).toContain('`cgt\\_billing`');
  });

  it('on Jira the exception is a comment and an entry of the gate property, updated when decided', async () => {
    const account = uniqueAccount('emjira');
    const { key } = stack.jiraSim.createIssue({ summary: 'emergency access', [CHANGE_TYPE_FIELD]: { value: 'Emergency' }, [ACTIONS_FIELD]: joiner(account) }, { reporter: 'req-9' });
    const exception = await waitFor('the Jira exception', async () => {
      const r = await axios.get(`${stack.apiUrl}/api/changes/jira/${key}/closure-check`, { headers: { authorization: `Bearer ${tokens.auditor}` } });
      const e = r.data.steps?.[0]?.exception;
      return e?.status === 'open' ? e : null;
    });
    expect((await stack.grantsOf(account)).join('\n')).toContain('`cgt\\_billing`');
    const gate = () => stack.jiraSim.property(key, GATE_PROPERTY) as { passed: boolean; exceptions?: Array<{ id: string; status: string; deadline?: string }> } | undefined;
    await waitFor('the exception listed in the gate property', () => gate()?.exceptions?.some((e) => e.id === exception.id && e.status === 'open' && e.deadline === exception.deadline));
    expect(gate()?.passed).toBe(false);
    await waitFor('the exception comment', () => stack.jiraSim.commentTexts(key).some((t) => t.includes(`Emergency exception ${exception.id}:`)));
    expect((await decide(exception.id, reviewer.token, { decision: 'accept', justification: 'outage OUT-7 needed it' })).status).toBe(200);
    await waitFor('the gate passed, the exception accepted', () => gate()?.passed === true && gate()?.exceptions?.some((e) => e.id === exception.id && e.status === 'accepted'));
  });

  it('the implementer when the grant was made may not decide, even after the change is reassigned', async () => {
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, type: 'emergency', state: '-3', requested_by: REQUESTER, assigned_to: IMPLEMENTER, u_identity_actions: joiner(uniqueAccount('emre')) });
    const { exception } = await exceptionOf(stack, number, 'open');
    // Reassigned (the shipped webhook rule delivers it with the next approval change).
    stack.sim.updateChange(change.sys_id as string, { assigned_to: randomBytes(16).toString('hex'), approval: 'requested' });
    await waitFor('the reassignment in the workflow', async () => (await stack.workflows.status('servicenow', number))?.implementer !== IMPLEMENTER);
    const impl = await decide(exception.id, tokens.implementer, { decision: 'accept', justification: 'it was needed' });
    expect([impl.status, impl.data.error.message]).toEqual([403, 'the implementer of the change may not decide on its emergency exception']);
    expect((await decide(exception.id, reviewer.token, { decision: 'accept', justification: 'reviewed' })).status).toBe(200);
  });

  it('a revoke takes back a grant that had no cleanup path of its own', async () => {
    const account = uniqueAccount('emnone');
    const number = uniqueTicketNumber();
    // Until the window's end, on a change with no end date: no cleanup path.
    const actions = JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'person', name: account, host: '%' }, grants: ['SELECT ON cgt_billing.*'], until: 'window-end' }]);
    stack.sim.createChange({ number, type: 'emergency', state: '-3', u_identity_actions: actions });
    const { check, exception } = await exceptionOf(stack, number, 'open');
    expect(check.steps[0].cleanup).toMatchObject({ status: 'none' });
    expect(await stack.accountExists(account)).toBe(true);
    expect((await decide(exception.id, reviewer.token, { decision: 'revoke', justification: 'no end was given' })).status).toBe(200);
    const done = await exceptionOf(stack, number, 'revoked');
    expect(done.exception.outcome).toMatch(/^taken back and verified/);
    expect(await stack.accountExists(account)).toBe(false);
  });

  it.each([
    ['cancelled', { state: '4' }],
    ['in Review', { state: '0' }],
  ])('an emergency grant on a change first seen %s is not made, and no exception is opened', async (_what, fields) => {
    const account = uniqueAccount('emlate');
    const number = uniqueTicketNumber();
    stack.sim.createChange({ number, type: 'emergency', ...fields, u_identity_actions: joiner(account) });
    const view = await waitFor('the first closure view', async () => {
      const r = await stack.closureCheck(number);
      return r.status === 200 && r.data.ticketState === fields.state ? r.data : null;
    });
    expect(view.steps[0]).toMatchObject({ status: fields.state === '4' ? 'cancelled' : 'waiting-authorization' });
    expect(view.steps[0].exception).toBeUndefined();
    expect(await stack.accountExists(account)).toBe(false);
  });

  it('an emergency change that is already authorized grants without an exception; a normal change still waits', async () => {
    const authorized = uniqueTicketNumber();
    stack.sim.createChange({ number: authorized, type: 'emergency', state: '-1', approval: 'approved', u_identity_actions: joiner(uniqueAccount('emauth')) });
    const ok = await waitFor('closure allowed', async () => {
      const r = await stack.closureCheck(authorized);
      return r.data.allowed ? r.data : null;
    });
    expect(ok.steps[0].exception).toBeUndefined();
    const normal = uniqueTicketNumber();
    const account = uniqueAccount('emnorm');
    stack.sim.createChange({ number: normal, type: 'normal', state: '-3', u_identity_actions: joiner(account) });
    const waiting = await waitFor('waiting for authorization', async () => {
      const r = await stack.closureCheck(normal);
      return r.data.steps?.[0]?.status === 'waiting-authorization' ? r.data : null;
    });
    expect(waiting.steps[0].exception).toBeUndefined();
    expect(await stack.accountExists(account)).toBe(false);
  });
});

describe('emergency exceptions with no decision: escalated, announced signed, and revoked by the policy at the deadline', () => {
  const secret = randomBytes(24).toString('hex');
  const received: Array<{ headers: http.IncomingHttpHeaders; raw: Buffer }> = [];
  let receiver: http.Server;
  let stack: Stack;
  beforeAll(async () => {
    receiver = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ headers: req.headers, raw: Buffer.concat(chunks) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const port = (receiver.address() as AddressInfo).port;
    stack = await startStack({
      policy: { version: 1, people, emergency: [{ system: 'mysql-local', kinds: ['joiner'] }], exceptions: { window: 'PT10S', escalateAfter: 0.5 } },
      notify: { url: `http://127.0.0.1:${port}/hooks/changegate`, secret },
    });
  });
  afterAll(async () => {
    await stack.stop();
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
  });

  it('escalates after half the window (note, queue, signed notification) and, undecided at the deadline, the policy revokes', async () => {
    const account = uniqueAccount('emdl');
    const number = uniqueTicketNumber();
    const change = stack.sim.createChange({ number, type: 'emergency', state: '-3', requested_by: REQUESTER, u_identity_actions: joiner(account) });
    const sysId = change.sys_id as string;
    const { exception } = await exceptionOf(stack, number);
    const escalated = await exceptionOf(stack, number, 'escalated');
    // The queue shows it escalated, its deadline still ahead.
    const reviewerToken = (await stack.tokenFor('security-reviewer')).token;
    const listed = await axios.get(`${stack.apiUrl}/api/exceptions?status=escalated&limit=200`, { headers: { authorization: `Bearer ${reviewerToken}` } });
    expect(listed.data.items.find((i: { id: string }) => i.id === escalated.exception.id)).toMatchObject({ status: 'escalated', escalatedAt: expect.any(String), overdue: false });
    expect(Date.parse(escalated.exception.escalatedAt)).toBeGreaterThanOrEqual(Date.parse(exception.escalateAt ?? escalated.exception.escalateAt));
    await waitFor('the escalation note', () => stack.sim.journal(sysId, 'work_notes').find((n) => n.value.includes(`Emergency exception ${escalated.exception.id} escalated`)));
    const note = await waitFor('the escalation notification', () => received.find((r) => r.headers['x-changegate-event'] === 'exception.escalated' && r.raw.toString().includes(escalated.exception.id)));
    // Signed over the timestamp and the raw bytes, checked here as a receiver would, with its own HMAC.
    const timestamp = String(note.headers['x-changegate-timestamp']);
    expect(Math.abs(Number(timestamp) - Date.now() / 1000)).toBeLessThan(300);
    const mac = (key: string) => `sha256=${createHmac('sha256', key).update(`${timestamp}.`).update(note.raw).digest('hex')}`;
    expect(note.headers['x-changegate-signature']).toBe(mac(secret));
    expect(note.headers['x-changegate-signature']).not.toBe(mac(`${secret}x`));
    expect(JSON.parse(note.raw.toString())).toMatchObject({ event: 'exception.escalated', exception: escalated.exception.id, ticket: `servicenow:${number}`, system: 'mysql-local' });
    // No secret ever goes out with it.
    expect(note.raw.toString()).not.toContain(secret);

    const done = await waitFor('the policy revoked it at the deadline', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed ? r.data : null;
    }, 30_000);
    expect(done.steps[0].exception).toMatchObject({ status: 'revoked', decision: { decision: 'revoke', byPolicy: true, by: { kind: 'policy' } } });
    expect(await stack.accountExists(account)).toBe(false);
    const rows = await stack.evidence.list(`servicenow:${number}`);
    expect(rows.map((r) => r.outcome)).toEqual(['granted', 'exception-opened', 'exception-escalated', 'exception-revoked', 'expired']);
    expect(rows[3]).toMatchObject({ principal: { kind: 'policy', id: 'policy:exceptions.onDeadline' }, verification: { byPolicy: true, decision: 'revoke' } });
    expect(Date.parse(rows[3]!.startedAt)).toBeGreaterThanOrEqual(Date.parse(escalated.exception.deadline));
    const task = await waitFor('the review task closed', () => stack.sim.tasks(sysId).find((t) => t.state === '3'));
    expect(task).toMatchObject({ close_code: 'unsuccessful', close_notes: expect.stringContaining('the policy (no decision by the deadline)') });
    await waitFor('the deadline notification', () => received.find((r) => r.headers['x-changegate-event'] === 'exception.deadline' && r.raw.toString().includes(escalated.exception.id)));
    const row = await waitFor('the ledger row revoked', async () =>
      (await axios.get(`${stack.apiUrl}/api/exceptions?status=revoked&limit=200`, { headers: { authorization: `Bearer ${reviewerToken}` } })).data.items.find((i: { id: string }) => i.id === escalated.exception.id));
    expect(row).toMatchObject({
      escalatedAt: expect.any(String), notified: expect.stringMatching(/^exception\.(escalated|deadline) delivered/), decision: { byPolicy: true },
    });
  });
});

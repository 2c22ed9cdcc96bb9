import { createHash, randomBytes } from 'node:crypto';
import axios, { type AxiosResponse } from 'axios';
import { adfParagraphs } from '../src/itsm/jira/jira-adf';
import { GATE_PROPERTY, DEMO_JIRA_SETTINGS } from '../src/itsm/jira/jira-settings';
import { ACTIONS_FIELD, CHANGE_TYPE_FIELD, PLANNED_END_FIELD, VALIDATOR_MESSAGE } from '../src/itsm/jira/jira-simulator';
import { signJiraWebhook } from '../src/itsm/jira/jira-signature';
import { LDAP_BASE_DN, type LdapTestServer, ldapConnectorEntry, startLdapServer } from './support/servers/ldap';
import { type Stack, createAccount, startStack, uniqueAccount, waitFor } from './support/stack';
import { TEST_ENV } from './support/test-env';

/**
 * Jira Service Management as a ticket source, end to end: the Jira simulator fires signed admin webhooks at the
 * gateway, which reads statuses, approvals and its own gate property back from the simulated site, runs the identity
 * actions on real MariaDB and OpenLDAP through the real Temporal server, and writes comments and the
 * `changegate.gate` property that the simulated workflow validator reads.
 */
describe('Jira changes through the gateway, the simulated site and real targets', () => {
  let ldap: LdapTestServer;
  let stack: Stack;
  beforeAll(async () => {
    ldap = await startLdapServer();
    stack = await startStack({
      extraConnectors: [
        ldapConnectorEntry(ldap, 'ldap-test', { protectedAccounts: [], revokeMode: 'disable' }),
      ],
      // The LDAP group is privileged: a change manager decides it once the change is authorized, which holds the gate.
      policy: { version: 1, people: [], privileged: [{ system: 'ldap-test', grants: ['group=cg-readers'] }] },
    });
  });
  afterAll(async () => {
    await stack?.stop();
    await ldap?.stop();
  });

  const api = async (method: 'get' | 'post', path: string, body?: unknown): Promise<AxiosResponse> =>
    axios.request({
      method,
      url: `${stack.apiUrl}${path}`,
      data: body,
      headers: { authorization: `Bearer ${(await stack.tokenFor('change-manager')).token}` },
      validateStatus: () => true,
    });
  const closureCheck = (key: string) => api('get', `/api/changes/jira/${key}/closure-check`);
  const postJira = (raw: Buffer, headers: Record<string, string | undefined>) =>
    axios.post(`${stack.apiUrl}/webhooks/jira`, raw, {
      headers: Object.fromEntries(Object.entries({ 'content-type': 'application/json', ...headers }).filter(([, v]) => v !== undefined)) as Record<string, string>,
      validateStatus: () => true,
    });
  const signed = (raw: Buffer, identifier?: string) =>
    postJira(raw, { 'x-hub-signature': signJiraWebhook(TEST_ENV.jiraWebhookSecret, raw), 'x-atlassian-webhook-identifier': identifier });
  const member = async (uid: string) =>
    ldap.asAdmin(async (admin) => {
      const readers = await admin.search(`cn=cg-readers,ou=groups,${LDAP_BASE_DN}`, { attributes: ['member'] });
      return ([] as unknown[]).concat(readers.searchEntries[0]?.member ?? []).map(String).some((m) => m.startsWith(`uid=${uid},`));
    });
  const gateOf = (key: string) => stack.jiraSim.property(key, GATE_PROPERTY) as { passed: boolean; actionsSha256: string; evidenceSha256: string; workflowId: string; updatedAt: string } | undefined;
  const status = (key: string) => stack.jiraSim.issue(key)?.status;
  const toImplementing = (key: string) => {
    for (const t of ['Request authorization', 'Authorize', 'Start implementation']) expect(stack.jiraSim.transition(key, t)).toEqual({ ok: true });
  };
  const ldapJoiner = (uid: string) => ({ kind: 'joiner', system: 'ldap-test', identity: { type: 'person', name: uid }, grants: ['group=cg-readers'], ttl: 'P1D' });

  it('a change from creation to Completed: the MariaDB leaver runs at once, the LDAP joiner waits for the JSM approval, Implementing and a change manager; Complete is refused by the validator until the gate passes', async () => {
    const account = uniqueAccount('jira');
    await createAccount(stack.admin, account);
    const uid = `cgj-${randomBytes(4).toString('hex')}`;
    const actions = JSON.stringify([{ kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' } }, ldapJoiner(uid)]);
    const issue = stack.jiraSim.createIssue(
      { summary: 'Offboard a service account, onboard an analyst', [CHANGE_TYPE_FIELD]: { value: 'Normal' }, [ACTIONS_FIELD]: actions, assignee: { accountId: 'impl-7' } },
      { reporter: 'req-3' },
    );
    const key = issue.key;
    // Revoke early: the leaver does not wait for anything.
    await waitFor('the MariaDB account to be dropped', async () => !(await stack.accountExists(account)));
    await waitFor('the leaver note on the issue', () => stack.jiraSim.commentTexts(key).some((t) => t.includes('[changegate') && t.includes('Verified: leaver') && t.includes(account)));
    await waitFor('the gate property, not passed', () => gateOf(key)?.passed === false);
    expect(await stack.workflows.status('jira', key)).toMatchObject({ phase: 'draft', emergency: false, requester: 'req-3', implementer: 'impl-7', sourceState: 'Planning' });

    // JSM approval: pending keeps the change in authorization; the integration user cannot answer it.
    const approval = stack.jiraSim.addApproval(key, 'Change advisory board', ['cab-member-1']);
    expect(stack.jiraSim.transition(key, 'Request authorization')).toEqual({ ok: true });
    await waitFor('authorization', async () => (await stack.workflows.status('jira', key))?.sourceState === 'Authorize');
    const answered = await axios.post(`${stack.jiraUrl}/rest/servicedeskapi/request/${key}/approval/${approval.id}`, { decision: 'approve' }, {
      auth: { username: TEST_ENV.jiraEmail, password: TEST_ENV.jiraApiToken },
      validateStatus: () => true,
    });
    expect(answered.status).toBe(403);
    expect(stack.jiraSim.issue(key)?.approvals[0]?.finalDecision).toBe('pending');
    stack.jiraSim.decide(key, approval.id, 'cab-member-1', 'approve');
    expect(status(key)).toBe('Awaiting implementation');
    await waitFor('awaiting implementation', async () => (await stack.workflows.status('jira', key))?.sourceState === 'Awaiting implementation');
    expect(await member(uid)).toBe(false);

    expect(stack.jiraSim.transition(key, 'Start implementation')).toEqual({ ok: true });
    const waiting = await waitFor('the joiner waiting for a change manager', async () => {
      const r = await closureCheck(key);
      return r.data.steps?.find((s: { kind: string }) => s.kind === 'joiner')?.status === 'waiting-approval' ? r.data : null;
    });
    expect(waiting).toMatchObject({ allowed: false, phase: 'implement', ticketState: 'Implementing' });

    // The validator: the gate property does not say passed, so Complete is refused and the change stays.
    expect(gateOf(key)?.passed).toBe(false);
    expect(stack.jiraSim.transition(key, 'Complete')).toEqual({ ok: false, status: 400, errorMessages: [VALIDATOR_MESSAGE] });
    expect(status(key)).toBe('Implementing');

    const stepId = waiting.steps.find((s: { kind: string }) => s.kind === 'joiner').stepId as string;
    const decided = await api('post', `/api/changes/jira/${key}/steps/${encodeURIComponent(stepId)}/decision`, { decision: 'approve', justification: 'analyst onboarding, CAB 12' });
    expect(decided.status).toBe(200);
    await waitFor('the LDAP membership', () => member(uid));
    const gate = await waitFor('the gate property to pass', () => (gateOf(key)?.passed === true ? gateOf(key) : undefined));
    const rows = await stack.evidence.list(`jira:${key}`);
    expect(gate).toEqual({
      passed: true,
      state: 'verified',
      actionsSha256: createHash('sha256').update(actions, 'utf8').digest('hex'),
      evidenceSha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      workflowId: `change-jira-${key}`,
      updatedAt: expect.any(String),
    });
    expect(rows.map((r) => r.hash)).toContain(gate.evidenceSha256);
    expect(rows.filter((r) => r.verified).map((r) => r.outcome).sort()).toEqual(expect.arrayContaining(['granted', 'revoked']));
    await waitFor('closure-check to allow closure', async () => (await closureCheck(key)).data.allowed === true);

    expect(stack.jiraSim.transition(key, 'Complete')).toEqual({ ok: true });
    await waitFor('the workflow to see the change closed', async () => (await stack.workflows.status('jira', key))?.phase === 'closed');
    expect(status(key)).toBe('Completed');
    expect(stack.jiraSim.commentTexts(key).some((t) => t.includes('[changegate reverted:'))).toBe(false);
    // Every comment the gateway wrote is one ADF paragraph list with its marker; none twice.
    const markers = stack.jiraSim.commentTexts(key).map((t) => /\[changegate ([^\]]+)\]/.exec(t)?.[1]).filter(Boolean);
    expect(new Set(markers).size).toBe(markers.length);
  });

  it('a pending JSM approval keeps a change in Implementing from granting; its approval lets the joiner run', async () => {
    const account = uniqueAccount('jirap');
    const { key } = stack.jiraSim.createIssue({
      summary: 'approval pending',
      [ACTIONS_FIELD]: JSON.stringify([{ kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT1H' }]),
    });
    const approval = stack.jiraSim.addApproval(key, 'Change manager', ['cm-1']);
    // Someone moves it on by hand while the approval is still pending.
    toImplementing(key);
    const state = await waitFor('Implementing delivered', async () => {
      const s = await stack.workflows.status('jira', key);
      return s?.sourceState === 'Implementing' ? s : null;
    });
    expect(state).toMatchObject({ phase: 'authorization' });
    expect(state.steps[0]?.status).toBe('waiting-authorization');
    expect(await stack.accountExists(account)).toBe(false);

    stack.jiraSim.decide(key, approval.id, 'cm-1', 'approve');
    await waitFor('the joiner to grant', () => stack.accountExists(account));
    expect(await stack.workflows.status('jira', key)).toMatchObject({ phase: 'implement', sourceState: 'Implementing' });
  });

  it('a Completed forced past the validator before the gate passes is moved back to Implementing with a comment listing the reasons; the workflow never sees it closed, and a repeat does nothing more', async () => {
    const uid = `cgj-${randomBytes(4).toString('hex')}`;
    const { key } = stack.jiraSim.createIssue({ summary: 'forced close', [ACTIONS_FIELD]: JSON.stringify([ldapJoiner(uid)]) });
    toImplementing(key);
    await waitFor('the joiner waiting for a change manager', async () => (await closureCheck(key)).data.steps?.[0]?.status === 'waiting-approval');
    // The guard quotes the published verdict's reasons: wait until the workflow has published it (closure-check may
    // have answered from the workflow itself before that).
    await waitFor('the published verdict', async () => (await stack.verdicts.latest('jira', key))?.view.reasons.some((r) => r.includes('waits for a change manager')));

    expect(stack.jiraSim.transition(key, 'Complete', { force: true })).toEqual({ ok: true });
    const forced = stack.jiraSim.deliveries.at(-1)!;
    await waitFor('the issue back in Implementing', () => status(key) === 'Implementing' && stack.jiraSim.commentTexts(key).some((t) => t.includes('[changegate reverted:')));
    const comment = stack.jiraSim.commentTexts(key).find((t) => t.includes('[changegate reverted:'))!;
    expect(comment).toContain(`${key} stands in 'Completed' while changegate's closure gate does not allow it to close, so it was moved back to 'Implementing'`);
    expect(comment).toContain(`- the issue property ${GATE_PROPERTY} does not say passed`);
    expect(comment).toMatch(/- .*waits for a change manager to decide on privileged grant\(s\): group=cg-readers/);
    await waitFor('the revert delivered', async () => (await stack.workflows.status('jira', key))?.version !== undefined && stack.jiraSim.deliveries.at(-1)?.status === 202);
    await stack.jiraSim.waitForDeliveries();
    const state = await stack.workflows.status('jira', key);
    expect(state).toMatchObject({ phase: 'implement', sourceState: 'Implementing' });
    expect(state?.steps[0]?.status).toBe('waiting-approval');

    // Jira's retry of the same delivery: acknowledged, no second transition, no second comment.
    const before = stack.jiraSim.issue(key)!.comments.length;
    const transitions = stack.jiraSim.deliveries.filter((d) => d.key === key && d.event === 'jira:issue_updated').length;
    expect(await stack.jiraSim.redeliver(forced.identifier)).toBe(202);
    expect(stack.jiraSim.issue(key)!.comments.length).toBe(before);
    expect(stack.jiraSim.deliveries.filter((d) => d.key === key && d.event === 'jira:issue_updated').length).toBe(transitions);
    expect(status(key)).toBe('Implementing');
    // The guard's decision is evidence in the ticket's chain, once, with the reasons.
    const reverts = (await stack.evidence.list(`jira:${key}`)).filter((r) => r.outcome === 'close-reverted');
    expect(reverts).toHaveLength(1);
    expect(reverts[0]).toMatchObject({ actionKind: 'close-guard', desiredState: { status: 'Implementing' }, observedState: { status: 'Completed', reasons: expect.arrayContaining([`the issue property ${GATE_PROPERTY} does not say passed`]) } });
    expect(await stack.evidence.verifyChain(`jira:${key}`)).toMatchObject({ valid: true });
  });

  it('late, repeated and out-of-order deliveries never move the ticket backwards: each carries the issue as Jira holds it when it arrives', async () => {
    stack.jiraSim.sendWebhooks = false;
    let key: string;
    try {
      key = stack.jiraSim.createIssue({ summary: 'ordering' }).key;
      expect(stack.jiraSim.transition(key, 'Request authorization')).toEqual({ ok: true });
      expect(stack.jiraSim.transition(key, 'Authorize')).toEqual({ ok: true });
    } finally {
      stack.jiraSim.sendWebhooks = true;
    }
    const [created, toAuthorize, toAwaiting] = stack.jiraSim.deliveries.filter((d) => d.key === key);
    const send = (d: { raw: Buffer; identifier: string }, identifier: string | undefined = d.identifier) => signed(d.raw, identifier);
    const workflowId = `change-jira-${key}`;

    // The first event to arrive is the oldest; it reads the issue as it stands now, two transitions later.
    expect((await send(created!)).data).toEqual({ workflowId, duplicate: false });
    await waitFor('Awaiting implementation', async () => (await stack.workflows.status('jira', key))?.sourceState === 'Awaiting implementation');
    // Events of states the gateway has already read, late and out of order: the state they read is the one delivered.
    expect((await send(toAwaiting!)).data).toEqual({ workflowId, duplicate: true });
    expect((await send(toAuthorize!)).data).toEqual({ workflowId, duplicate: true });
    expect((await send(toAuthorize!, undefined)).data).toEqual({ workflowId, duplicate: true });

    // The issue moves on while its event is held back; an older event, arriving late, brings the newer state.
    stack.jiraSim.sendWebhooks = false;
    try {
      expect(stack.jiraSim.transition(key, 'Start implementation')).toEqual({ ok: true });
    } finally {
      stack.jiraSim.sendWebhooks = true;
    }
    const toImplementing = stack.jiraSim.deliveries.filter((d) => d.key === key).at(-1)!;
    expect((await send(toAuthorize!, undefined)).data).toEqual({ workflowId, duplicate: false });
    // Jira's own retry of the event, and the event itself, once it comes: the same state again.
    expect((await send(created!)).data.duplicate).toBe(true);
    expect((await send(toImplementing)).data.duplicate).toBe(true);

    const state = await waitFor('both states delivered', async () => {
      const s = await stack.workflows.status('jira', key);
      return s && s.deliveries === 2 ? s : null;
    });
    expect(state).toMatchObject({ phase: 'implement', sourceState: 'Implementing', ignoredStale: 0 });
  });

  it('two saves of an issue in one millisecond whose changelog ids straddle a multiple of 1024 leave the workflow at the later status, in either order of arrival', async () => {
    for (const order of ['in order', 'reversed'] as const) {
      stack.jiraSim.sendWebhooks = false;
      let key: string;
      try {
        key = stack.jiraSim.createIssue({ summary: `one millisecond, ${order}` }).key;
        const t = Date.now();
        stack.jiraSim.now = () => t;
        // The first save's changelog id ends a block of 1024, the second's starts the next.
        stack.jiraSim.nextChangelogId(1024 * (1000 + randomBytes(2).readUInt16BE()) + 1023);
        expect(stack.jiraSim.transition(key, 'Request authorization')).toEqual({ ok: true });
        expect(stack.jiraSim.transition(key, 'Authorize')).toEqual({ ok: true });
      } finally {
        stack.jiraSim.now = Date.now;
        stack.jiraSim.sendWebhooks = true;
      }
      const [created, first, second] = stack.jiraSim.deliveries.filter((d) => d.key === key);
      const sequence = order === 'in order' ? [created!, first!, second!] : [created!, second!, first!];
      const answers: Array<{ duplicate: boolean }> = [];
      for (const d of sequence) answers.push((await signed(d.raw, d.identifier)).data);
      const accepted = answers.filter((a) => !a.duplicate).length;
      const state = await waitFor(`every accepted delivery read (${order})`, async () => {
        const s = await stack.workflows.status('jira', key);
        return s && s.deliveries === accepted ? s : null;
      });
      expect({ order, sourceState: state.sourceState }).toEqual({ order, sourceState: 'Awaiting implementation' });
      expect(status(key)).toBe('Awaiting implementation');
    }
  });

  it('an event Jira gave up on is brought in by reconciliation: a JQL pass hands over the issue as it stands, and the cursor moves on', async () => {
    const { key, id } = stack.jiraSim.createIssue({ summary: 'given up' });
    await waitFor('Planning delivered', async () => (await stack.workflows.status('jira', key))?.sourceState === 'Planning');
    // The next event never reaches the gateway (Jira retried, then gave up): the workflow still sees Planning.
    stack.jiraSim.sendWebhooks = false;
    try {
      expect(stack.jiraSim.transition(key, 'Request authorization')).toEqual({ ok: true });
    } finally {
      stack.jiraSim.sendWebhooks = true;
    }
    const report = await stack.reconcileJira();
    expect(report).toMatchObject({ ran: true });
    expect(report.accepted).toBeGreaterThanOrEqual(1);
    await waitFor('Authorize, reconciled', async () => (await stack.workflows.status('jira', key))?.sourceState === 'Authorize');
    const rows: Array<{ event_id: string }> = await stack.ds.query('SELECT event_id FROM webhook_deliveries WHERE source = ? AND ticket_number = ? ORDER BY id', ['jira', key]);
    expect(rows.at(-1)?.event_id).toMatch(new RegExp(`^reconcile:${id}:\\d+$`));
    // This site's cursor (worker processes of other suites keep their own, one per simulated site).
    const cursors: Array<{ updated_on: string }> = await stack.ds.query('SELECT updated_on FROM itsm_sync_cursors WHERE cursor_key = ?', [`jira:${stack.jiraUrl.replace(/\/+$/, '')}/CHG`]);
    expect(cursors).toHaveLength(1);
    expect(Date.parse(cursors[0]!.updated_on)).toBeGreaterThanOrEqual(stack.jiraSim.issue(key)!.updated - 60_000);
  });

  it('a delivery the gateway cannot check with Jira (the approval API failing) is 503, and Jira retries it with the same identifier until it lands', async () => {
    const { key } = stack.jiraSim.createIssue({ summary: 'retried' });
    await waitFor('the created delivery', async () => (await stack.workflows.status('jira', key))?.sourceState === 'Planning');
    stack.jiraSim.fault = { kind: 'server-error', status: 503, times: 1, path: /\/approval$/ };
    expect(stack.jiraSim.transition(key, 'Request authorization')).toEqual({ ok: true });
    const delivery = stack.jiraSim.deliveries.at(-1)!;
    await waitFor('Authorize delivered', async () => (await stack.workflows.status('jira', key))?.sourceState === 'Authorize');
    expect(delivery).toMatchObject({ attempts: 2, status: 202 });
    const rows: Array<{ event_id: string }> = await stack.ds.query('SELECT event_id FROM webhook_deliveries WHERE source = ? AND ticket_number = ?', ['jira', key]);
    expect(rows.map((r) => r.event_id)).toContain(delivery.identifier);
  });

  it('a rate-limited gate write is retried after Retry-After and lands; a late delivery for a finished ticket is acknowledged, not refused', async () => {
    stack.jiraSim.fault = { kind: 'rate-limit', retryAfterSeconds: 1, times: 1, path: /\/properties\// };
    const { key } = stack.jiraSim.createIssue({ summary: 'no identity actions' });
    // A change without identity actions gets `not_applicable`, which passes; the first PUT of it was answered 429.
    await waitFor('the gate property, passed', () => (stack.jiraSim.property(key, GATE_PROPERTY) as { passed?: boolean } | undefined)?.passed === true);
    expect(stack.jiraSim.fault).toBeUndefined();
    // One change whose delivery Jira holds back, to arrive after the ticket has finished.
    stack.jiraSim.sendWebhooks = false;
    expect(stack.jiraSim.transition(key, 'Request authorization')).toEqual({ ok: true });
    stack.jiraSim.sendWebhooks = true;
    const held = stack.jiraSim.deliveries.at(-1)!;
    for (const t of ['Authorize', 'Start implementation']) expect(stack.jiraSim.transition(key, t)).toEqual({ ok: true });
    await waitFor('Implementing', async () => (await stack.workflows.status('jira', key))?.sourceState === 'Implementing');
    expect(stack.jiraSim.transition(key, 'Complete')).toEqual({ ok: true });
    await waitFor('the workflow to complete', async () => (await stack.workflows.client.workflow.getHandle(`change-jira-${key}`).describe()).status.name === 'COMPLETED');
    // Someone edits the finished issue (Jira sends that event too, later): the held event reads an issue state the
    // gateway has not had, for a workflow that has finished.
    stack.jiraSim.sendWebhooks = false;
    stack.jiraSim.updateFields(key, { summary: 'edited after the close' });
    stack.jiraSim.sendWebhooks = true;
    const late = await signed(held.raw, held.identifier);
    expect(late.status).toBe(202);
    expect(late.data).toMatchObject({ workflowId: `change-jira-${key}`, ignored: "the ticket's workflow has finished" });
  });

  it('a bad X-Hub-Signature is 401 and changes nothing; so is a missing one and one made with another secret', async () => {
    stack.jiraSim.sendWebhooks = false;
    let key: string;
    try {
      key = stack.jiraSim.createIssue({ summary: 'unsigned', [ACTIONS_FIELD]: JSON.stringify([ldapJoiner('cgj-never')]) }).key;
    } finally {
      stack.jiraSim.sendWebhooks = true;
    }
    const raw = stack.jiraSim.deliveries.find((d) => d.key === key)!.raw;
    const tampered = Buffer.from(raw.toString('utf8').replace('unsigned', 'Unsigned'));
    for (const signature of [
      signJiraWebhook(TEST_ENV.jiraWebhookSecret, raw).replace(/.$/, (c) => (c === '0' ? '1' : '0')),
      signJiraWebhook(TEST_ENV.webhookSecret, raw),
      undefined,
      'sha1=abc',
    ]) {
      const res = await postJira(raw, { 'x-hub-signature': signature, 'x-atlassian-webhook-identifier': `bad-${randomBytes(4).toString('hex')}` });
      expect(res.status).toBe(401);
    }
    const res = await postJira(tampered, { 'x-hub-signature': signJiraWebhook(TEST_ENV.jiraWebhookSecret, raw) });
    expect(res.status).toBe(401);
    expect(res.data.error.message).toMatch(/bad-signature/);
    expect(await stack.workflows.status('jira', key)).toBeNull();
    const rows: unknown[] = await stack.ds.query('SELECT id FROM webhook_deliveries WHERE source = ? AND ticket_number = ?', ['jira', key]);
    expect(rows).toEqual([]);
    expect(stack.jiraSim.issue(key)!.comments).toEqual([]);
  });

  it('an invalid changegate code block is 400 and the issue gets one comment listing each problem and its path', async () => {
    const description = {
      type: 'doc',
      version: 1,
      content: [
        { type: 'paragraph', content: [{ type: 'text', text: 'Remove the batch account.' }] },
        { type: 'codeBlock', attrs: { language: 'changegate' }, content: [{ type: 'text', text: JSON.stringify([{ kind: 'leaver', system: 'no-such-system', identity: { type: 'service_account', name: 'x' } }, { kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: 'svc_x', host: '%' }, grants: ['FLY ON cgt_billing.*'], ttl: 'P1D' }]) }] },
      ],
    };
    const { key } = stack.jiraSim.createIssue({ summary: 'bad actions', description });
    await waitFor('the delivery refused', () => stack.jiraSim.deliveries.find((d) => d.key === key)?.status === 400);
    const comment = await waitFor('the comment', () => stack.jiraSim.commentTexts(key).find((t) => t.includes('[changegate invalid:')));
    expect(comment).toContain(`changegate did not accept the identity actions of ${key}; nothing was done`);
    expect(comment).toMatch(/- fields\.description\.changegate\[0\]\.system: .+/);
    expect(comment).toMatch(/- fields\.description\.changegate\[1\]\.grants\[0\]: .+/);
    // Not retried by Jira (400), and nothing started.
    expect(stack.jiraSim.deliveries.find((d) => d.key === key)?.attempts).toBe(1);
    expect(await stack.workflows.status('jira', key)).toBeNull();
    // The same problems again (the issue saved unchanged): no second comment.
    stack.jiraSim.updateFields(key, { summary: 'bad actions, again' });
    await waitFor('the second refusal', () => stack.jiraSim.deliveries.filter((d) => d.key === key && d.status === 400).length === 2);
    expect(stack.jiraSim.commentTexts(key).filter((t) => t.includes('[changegate invalid:'))).toHaveLength(1);
  });

  it('an unknown change-type option is Normal and the issue says so; Emergency is emergency only when the field says it', async () => {
    stack.jiraSim.addChangeTypeOption('Freeze Period');
    const uid = `cgj-${randomBytes(4).toString('hex')}`;
    const frozen = stack.jiraSim.createIssue({ summary: 'freeze', [CHANGE_TYPE_FIELD]: { value: 'Freeze Period' }, [ACTIONS_FIELD]: JSON.stringify([ldapJoiner(uid)]), [PLANNED_END_FIELD]: '2026-12-01T19:00:00.000+0100' });
    const note = await waitFor('the change-type comment', () => stack.jiraSim.commentTexts(frozen.key).find((t) => t.includes('[changegate change-type:Freeze Period]')));
    expect(note).toContain("Change type 'Freeze Period' is not one changegate knows (Standard, Normal, Emergency): this change is treated as Normal");
    const state = await waitFor('the workflow', () => stack.workflows.status('jira', frozen.key));
    // The planned end (the settings' windowEndField) is the change window's end, in UTC.
    expect(state).toMatchObject({ emergency: false, phase: 'draft', windowEnd: '2026-12-01T18:00:00.000Z' });
    expect(state.steps[0]?.status).toBe('waiting-authorization');

    const urgent = stack.jiraSim.createIssue({ summary: 'emergency', [CHANGE_TYPE_FIELD]: { value: 'Emergency' } });
    expect(await waitFor('the emergency workflow', () => stack.workflows.status('jira', urgent.key))).toMatchObject({ emergency: true });
    // Never inferred: a summary shouting EMERGENCY with no change type is a Normal change.
    const shouted = stack.jiraSim.createIssue({ summary: 'EMERGENCY: urgent emergency change' });
    expect(await waitFor('the shouted workflow', () => stack.workflows.status('jira', shouted.key))).toMatchObject({ emergency: false });
    // The same unknown option again: no second comment.
    stack.jiraSim.updateFields(frozen.key, { summary: 'freeze, edited' });
    await waitFor('the edit delivered', async () => (await stack.workflows.status('jira', frozen.key))?.deliveries === 2);
    expect(stack.jiraSim.commentTexts(frozen.key).filter((t) => t.includes('change-type:'))).toHaveLength(1);
  });

  it("the gateway's own issue_property_set events are acknowledged with no effect; other events are ignored too", async () => {
    await stack.jiraSim.waitForDeliveries();
    const own = stack.jiraSim.deliveries.filter((d) => d.event === 'issue_property_set');
    expect(own.length).toBeGreaterThan(0);
    expect(own.every((d) => d.status === 202)).toBe(true);
    const raw = Buffer.from(JSON.stringify({ timestamp: Date.now(), webhookEvent: 'issue_property_set', property: { key: GATE_PROPERTY, value: { passed: true } }, issue: { id: '1', key: 'CHG-1' } }));
    const res = await signed(raw, `prop-${randomBytes(4).toString('hex')}`);
    expect(res.status).toBe(202);
    expect(res.data).toEqual({ workflowId: '', duplicate: false, ignored: `the gateway's own ${GATE_PROPERTY} property` });
    expect(await stack.workflows.status('jira', 'CHG-1')).toBeNull();
    const comment = await signed(Buffer.from(JSON.stringify({ webhookEvent: 'comment_created', comment: { body: adfParagraphs('hi') } })), `c-${randomBytes(4).toString('hex')}`);
    expect(comment.data.ignored).toBe('event comment_created is not read');
  });

  it('/readyz reports the Jira source ready when every configured status exists in the project', async () => {
    const res = await axios.get(`${stack.apiUrl}/readyz`, { validateStatus: () => true });
    expect(res.status).toBe(200);
    expect(res.data).toMatchObject({ status: 'ready', sources: { jira: 'ok' } });
  });
});

describe('Jira settings that name a status the project does not have', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      inProcessWorker: false,
      jira: { settings: { ...DEMO_JIRA_SETTINGS, statusPhases: { ...DEMO_JIRA_SETTINGS.statusPhases, 'Awaiting CAB': 'authorization' } } },
    });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('/readyz fails naming the missing status', async () => {
    const res = await axios.get(`${stack.apiUrl}/readyz`, { validateStatus: () => true });
    expect(res.status).toBe(503);
    expect(res.data).toMatchObject({ status: 'not-ready', database: 'ok', temporal: 'ok', sources: { jira: "down: configured status 'Awaiting CAB' does not exist in project CHG" } });
  });
});


import { mkdtempSync, rmSync } from 'node:fs';
import axios from 'axios';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adfParagraphs, adfProblems, extractActionsBlock } from '../src/itsm/jira/jira-adf';
import { JiraClient, JiraError, jiraBaseUrl } from '../src/itsm/jira/jira-client';
import { JiraRuntime, jiraWriteBack } from '../src/itsm/jira/jira-runtime';
import { DEMO_JIRA_SETTINGS, GATE_PROPERTY, loadJiraSettings, parseJiraSettings } from '../src/itsm/jira/jira-settings';
import { type JiraSimulator, createJiraSimulator } from '../src/itsm/jira/jira-simulator';
import { signJiraWebhook, verifyJiraSignature } from '../src/itsm/jira/jira-signature';
import { jiraVersion, parseJiraDateTime } from '../src/itsm/jira/jira-version';
import { WriteBackError } from '../src/itsm/source';

const code = (language: string, text: string) => ({ type: 'codeBlock', attrs: { language }, content: [{ type: 'text', text }] });
const doc = (...content: unknown[]) => ({ type: 'doc', version: 1, content });

describe('the changegate code block in a description', () => {
  it('is found in ADF as a codeBlock whose language is changegate, also nested, and its text is returned as written', () => {
    const text = '[{"kind": "leaver",\n "system": "mysql-local"}]';
    expect(extractActionsBlock(doc({ type: 'paragraph', content: [{ type: 'text', text: 'x' }] }, code('json', '{}'), code('changegate', text)))).toEqual({ found: true, text });
    expect(extractActionsBlock(doc({ type: 'panel', content: [{ type: 'expand', content: [code('changegate', '[]')] }] }))).toEqual({ found: true, text: '[]' });
  });
  it('is found in plain text as a ``` fence named changegate, and in wiki markup as {code:changegate}', () => {
    expect(extractActionsBlock('Steps:\n```changegate\n[1,\n2]\n```\nthanks')).toEqual({ found: true, text: '[1,\n2]' });
    expect(extractActionsBlock('before {code:changegate}[]{code} after')).toEqual({ found: true, text: '[]' });
  });
  it('is absent when no block carries the language (other languages, prose, empty descriptions)', () => {
    expect(extractActionsBlock(doc(code('javascript', '[]')))).toEqual({ found: false });
    expect(extractActionsBlock('```json\n[]\n```')).toEqual({ found: false });
    expect(extractActionsBlock(null)).toEqual({ found: false });
    expect(extractActionsBlock(undefined)).toEqual({ found: false });
  });
  it('refuses two blocks rather than choosing one', () => {
    expect(extractActionsBlock(doc(code('changegate', '[]'), code('changegate', '[]')))).toEqual({ found: true, error: 'has 2 code blocks tagged changegate: put every action in one' });
  });
  it('comments are ADF paragraphs, one per line, that the structural check accepts; bad bodies are named by path', () => {
    const body = adfParagraphs('[changegate m1]\nfirst\n\nsecond');
    expect(body.content).toHaveLength(3);
    expect(adfProblems(body)).toEqual([]);
    expect(adfProblems({ type: 'doc', version: 1, content: [{ type: 'paragraph', content: [{ type: 'text', text: '' }] }] })).toEqual(['body.content[0].content[0].text: must be a non-empty string']);
    expect(adfProblems('plain')).toEqual(['body: must be an ADF document ({"type": "doc", "version": 1, "content": [...]})']);
  });
});

describe('the ticket version of a Jira delivery', () => {
  const at = (iso: string) => parseJiraDateTime(iso) as number;
  it("orders by the issue's updated time; a version is the last one its millisecond can have", () => {
    const t = at('2026-11-30T10:00:00.001+0000');
    expect(jiraVersion(t)).toBeLessThan(jiraVersion(t + 1));
    // Comparable with versions recorded under the earlier scheme (ms × 1024 + changelog id mod 1024): after every one of
    // its own millisecond, before every one of the next.
    expect(jiraVersion(t)).toBeGreaterThanOrEqual(t * 1024 + 1023);
    expect(jiraVersion(t)).toBeLessThan((t + 1) * 1024);
  });
  it("reads Jira's offsets with and without a colon, and stays a safe integer", () => {
    expect(at('2026-11-30T11:00:00.000+0100')).toBe(Date.parse('2026-11-30T10:00:00.000Z'));
    expect(at('2026-11-30T10:00:00Z')).toBe(Date.parse('2026-11-30T10:00:00.000Z'));
    expect(parseJiraDateTime('30/11/2026')).toBeUndefined();
    expect(Number.isSafeInteger(jiraVersion(at('2200-01-01T00:00:00.000+0000')))).toBe(true);
  });
});

describe('X-Hub-Signature', () => {
  const raw = Buffer.from('{"webhookEvent":"jira:issue_updated"}');
  it('accepts the HMAC-SHA256 of the raw bytes and refuses anything else, naming why', () => {
    expect(verifyJiraSignature('s3cret-s3cret-s3cret', raw, signJiraWebhook('s3cret-s3cret-s3cret', raw))).toEqual({ ok: true });
    expect(verifyJiraSignature('s3cret-s3cret-s3cret', Buffer.from(`${raw.toString()} `), signJiraWebhook('s3cret-s3cret-s3cret', raw))).toEqual({ ok: false, reason: 'bad-signature' });
    expect(verifyJiraSignature('s3cret-s3cret-s3cret', raw, undefined)).toEqual({ ok: false, reason: 'missing-signature' });
    expect(verifyJiraSignature('s3cret-s3cret-s3cret', raw, 'sha256=zz')).toEqual({ ok: false, reason: 'malformed-signature' });
    expect(verifyJiraSignature(undefined, raw, signJiraWebhook('x', raw))).toEqual({ ok: false, reason: 'no-secret-configured' });
  });
});

describe('Jira settings', () => {
  it('load from a file or from JSON given inline, and name the file when it cannot be read', () => {
    expect(loadJiraSettings('config/jira.demo.json')).toEqual(DEMO_JIRA_SETTINGS);
    expect(loadJiraSettings(JSON.stringify({ ...DEMO_JIRA_SETTINGS, projectKey: 'OPS' })).projectKey).toBe('OPS');
    expect(() => loadJiraSettings('config/nope.json')).toThrow(/cannot read Jira settings config\/nope.json/);
    expect(() => loadJiraSettings('{"projectKey": "x"}')).toThrow(/invalid Jira settings in JIRA_SETTINGS:\n {2}projectKey: must be a Jira project key/);
  });

  it('refuse a revert status that is not mapped or is final, naming the field', () => {
    expect(() => parseJiraSettings({ ...DEMO_JIRA_SETTINGS, revertStatus: 'Nowhere' }, 'test')).toThrow(/revertStatus: 'Nowhere' is not one of the statuses statusPhases maps/);
    expect(() => parseJiraSettings({ ...DEMO_JIRA_SETTINGS, revertStatus: 'Completed' }, 'test')).toThrow(/revertStatus: must map to a phase that is not final/);
    expect(() => parseJiraSettings({ ...DEMO_JIRA_SETTINGS, statusPhases: { ...DEMO_JIRA_SETTINGS.statusPhases, Planning: 'later' } }, 'test')).toThrow(/statusPhases.Planning: must be one of/);
  });
});

describe('the Jira client and write-back against the simulated site', () => {
  let sim: JiraSimulator;
  let url: string;
  let close: () => Promise<void>;
  const EMAIL = 'int@example.com';
  const TOKEN = 'api-token-1';
  const CLOUD = '11111111-2222-3333-4444-555555555555';
  beforeAll(async () => {
    sim = createJiraSimulator({ email: EMAIL, apiToken: TOKEN, oauth: { cloudId: CLOUD, accessToken: 'oauth-access-1' } });
    ({ url, close } = await sim.listen());
  });
  afterAll(async () => {
    await close();
  });
  const basic = () => new JiraClient({ kind: 'basic', siteUrl: url, email: EMAIL, apiToken: TOKEN });

  it('reaches the site by basic auth at its URL and by OAuth through /ex/jira/{cloudId} with a bearer token', async () => {
    expect(jiraBaseUrl({ kind: 'oauth', cloudId: CLOUD, accessToken: 't' })).toBe(`https://api.atlassian.com/ex/jira/${CLOUD}`);
    const oauth = new JiraClient({ kind: 'oauth', cloudId: CLOUD, accessToken: 'oauth-access-1', apiGateway: url });
    expect((await oauth.projectStatuses('CHG')).map((s) => s.name)).toContain('Implementing');
    expect((await basic().projectStatuses('CHG')).find((s) => s.name === 'Completed')).toMatchObject({ category: 'done' });
    const wrong = new JiraClient({ kind: 'oauth', cloudId: CLOUD, accessToken: 'stolen', apiGateway: url });
    await expect(wrong.projectStatuses('CHG')).rejects.toMatchObject({ kind: 'refused', status: 401 });
    expect(() => new JiraClient({ kind: 'basic', siteUrl: 'https://u:p@x.atlassian.net', email: EMAIL, apiToken: TOKEN })).toThrow(/must not carry credentials/);
  });

  it('maps 429 to rate_limited with Retry-After, ISO X-RateLimit-Reset as the fallback, 5xx and outages to transient, 404 to not_found, ErrorCollection to refused', async () => {
    const { key } = sim.createIssue({ summary: 'errors' });
    sim.fault = { kind: 'rate-limit', retryAfterSeconds: 7, times: 1 };
    const limited = await basic().getIssue(key, ['status']).catch((e: unknown) => e);
    expect(limited).toBeInstanceOf(JiraError);
    expect(limited).toMatchObject({ kind: 'rate_limited', status: 429, retryAfterMs: 7000, errorMessages: ['Rate limit exceeded.'] });
    const { retryAfterMs } = await import('../src/itsm/jira/jira-client');
    expect(retryAfterMs({ rateLimitReset: new Date(Date.parse('2026-01-01T00:00:30Z')).toISOString() }, Date.parse('2026-01-01T00:00:00Z'))).toBe(30_000);
    sim.fault = { kind: 'server-error', status: 502, times: 1 };
    await expect(basic().getIssue(key, ['status'])).rejects.toMatchObject({ kind: 'transient', status: 502 });
    sim.fault = { kind: 'outage', times: 1 };
    await expect(basic().getIssue(key, ['status'])).rejects.toMatchObject({ kind: 'transient', status: undefined });
    await expect(basic().getIssue('CHG-999999999999', ['status'])).rejects.toMatchObject({ kind: 'not_found', status: 404 });
    await expect(basic().transition(key, '999')).rejects.toMatchObject({ kind: 'refused', status: 400, errorMessages: ["Transition id '999' is not valid for this issue."] });
    // The credentials never appear in what an error carries.
    const err = (await basic().getIssue('CHG-999999999999', []).catch((e: unknown) => e)) as Error;
    expect(JSON.stringify(err, Object.getOwnPropertyNames(err))).not.toContain(TOKEN);
    expect(sim.fault).toBeUndefined();
  });

  it('a slow reply past the timeout is transient', async () => {
    const { key } = sim.createIssue({ summary: 'slow' });
    sim.fault = { kind: 'slow', delayMs: 400, times: 1 };
    const client = new JiraClient({ kind: 'basic', siteUrl: url, email: EMAIL, apiToken: TOKEN }, { timeoutMs: 100 });
    await expect(client.getIssue(key, ['status'])).rejects.toMatchObject({ kind: 'transient', message: expect.stringMatching(/timed out/) });
  });

  it('transitions are looked up by the status they lead to on each issue; the validator refuses Complete until the gate property says passed', async () => {
    const client = basic();
    const { key } = sim.createIssue({ summary: 'transitions' });
    for (const to of ['Authorize', 'Awaiting implementation', 'Implementing']) await client.transitionTo(key, to);
    await expect(client.transitionTo(key, 'Planning')).rejects.toMatchObject({ kind: 'refused', message: expect.stringMatching(/no transition from the issue's status to 'Planning'/) });
    for (const value of [undefined, { passed: false }, { passed: 'true' }, ['passed']]) {
      if (value !== undefined) await client.setProperty(key, GATE_PROPERTY, value);
      await expect(client.transitionTo(key, 'Completed')).rejects.toMatchObject({ kind: 'refused', status: 400, errorMessages: [expect.stringMatching(/identity cleanup is not proven yet/)] });
    }
    await client.setProperty(key, GATE_PROPERTY, { passed: true });
    await client.transitionTo(key, 'Completed');
    expect(sim.issue(key)?.status).toBe('Completed');
  });

  it('issue properties: 201 created, 200 updated, over 32,768 characters refused by the site and by the client', async () => {
    const { key } = sim.createIssue({ summary: 'properties' });
    const put = (value: unknown) => axios.put(`${url}/rest/api/3/issue/${key}/properties/x.y`, value, { auth: { username: EMAIL, password: TOKEN }, validateStatus: () => true });
    expect((await put({ a: 1 })).status).toBe(201);
    expect((await put({ a: 2 })).status).toBe(200);
    const big = { text: 'x'.repeat(32_800) };
    const refused = await put(big);
    expect(refused.status).toBe(400);
    expect((refused.data as { errorMessages: string[] }).errorMessages[0]).toMatch(/too long/);
    await expect(basic().setProperty(key, 'x.y', big)).rejects.toMatchObject({ kind: 'refused', message: expect.stringMatching(/Jira allows 32768/) });
    expect(await basic().getProperty(key, 'no.such')).toBeUndefined();
  });

  it('the write-back posts a comment once per marker (a retry finds it) and writes the gate property; errors become WriteBackErrors', async () => {
    const { key, id } = sim.createIssue({ summary: 'write-back' });
    const runtime = new JiraRuntime({ client: basic(), settings: DEMO_JIRA_SETTINGS, evidenceHead: async () => 'a'.repeat(64) });
    const ticket = { source: 'jira', key, recordId: id };
    expect(await jiraWriteBack(runtime).postNote(ticket, 'step:1', 'Verified: leaver')).toEqual({ posted: true });
    // A retried activity runs in a fresh adapter (another worker): the marker among the comments is what stops it.
    const again = jiraWriteBack(new JiraRuntime({ client: basic(), settings: DEMO_JIRA_SETTINGS }));
    expect(await again.postNote(ticket, 'step:1', 'Verified: leaver')).toEqual({ posted: false });
    expect(sim.commentTexts(key)).toEqual(['[changegate step:1]\nVerified: leaver']);
    await jiraWriteBack(runtime).setGate(ticket, { value: 'verified', digest: 'd'.repeat(64) });
    expect(sim.property(key, GATE_PROPERTY)).toEqual({ passed: true, state: 'verified', actionsSha256: 'd'.repeat(64), evidenceSha256: 'a'.repeat(64), workflowId: `change-jira-${key}`, updatedAt: expect.any(String) });
    await jiraWriteBack(runtime).setGate(ticket, { value: 'pending', digest: '' });
    expect(sim.property(key, GATE_PROPERTY)).toMatchObject({ passed: false, state: 'pending' });
    sim.fault = { kind: 'rate-limit', retryAfterSeconds: 2, times: 1 };
    const limited = await jiraWriteBack(runtime).setGate(ticket, { value: 'verified', digest: '' }).catch((e: unknown) => e);
    expect(limited).toBeInstanceOf(WriteBackError);
    expect(limited).toMatchObject({ kind: 'rate_limited', retryAfterMs: 2000 });
    expect(await jiraWriteBack(runtime).postNote({ ...ticket, recordId: '999999999' }, 'm', 't').catch((e: unknown) => e)).toMatchObject({ kind: 'not_found' });
  });

  it('the close guard lets a close through only when the gate property passes for the actions the issue holds now; otherwise it moves the issue back, once', async () => {
    const client = basic();
    const runtime = new JiraRuntime({ client, settings: DEMO_JIRA_SETTINGS, verdicts: async () => ({ allowed: false, reasons: ['step joiner:1 is still running'] }) });
    const { key, id } = sim.createIssue({ summary: 'guard' });
    for (const to of ['Authorize', 'Awaiting implementation', 'Implementing']) await client.transitionTo(key, to);
    const facts = (digest: string) => ({ issueId: id, key, status: 'Completed', version: 5, emergency: false, actions: [], actionsDigest: digest });
    await client.setProperty(key, GATE_PROPERTY, { passed: true, actionsSha256: 'a'.repeat(64) });
    expect(sim.transition(key, 'Complete')).toEqual({ ok: true });
    const through = await runtime.admit(facts('a'.repeat(64)), 'e1', new Date());
    expect('deliver' in through && through.deliver).toMatchObject({ phase: 'closed', sourceState: 'Completed' });
    expect(sim.issue(key)?.status).toBe('Completed');

    // The gate was written for other actions than the issue holds now: back to Implementing, with the reasons.
    const back = await runtime.admit(facts('b'.repeat(64)), 'e2', new Date());
    expect(back).toEqual({ ignored: 'closed before the gate allowed it: moved back to Implementing' });
    expect(sim.issue(key)?.status).toBe('Implementing');
    const comments = sim.commentTexts(key).filter((t) => t.includes('[changegate reverted:5]'));
    expect(comments).toHaveLength(1);
    expect(comments[0]).toContain('- the gate was written for other identity actions than the issue holds now\n- step joiner:1 is still running');
    // The same delivery again: the issue no longer stands in a closing status, and the comment is there already.
    await runtime.admit(facts('b'.repeat(64)), 'e2', new Date());
    expect(sim.issue(key)?.status).toBe('Implementing');
    expect(sim.commentTexts(key).filter((t) => t.includes('[changegate reverted:5]'))).toHaveLength(1);
  });

  it('comments that are not ADF are refused with an ErrorCollection naming the field', async () => {
    const { key } = sim.createIssue({ summary: 'adf' });
    await expect(basic().addComment(key, { type: 'doc', version: 1, content: [{ type: 'paragraph', content: [{ type: 'text', text: '' }] }] })).rejects.toMatchObject({
      kind: 'refused',
      status: 400,
      errors: { comment: expect.stringMatching(/text: must be a non-empty string/) },
    });
  });

  it('JSM approvals: only an assigned approver may answer (403 otherwise); the last answer moves the change on', async () => {
    const { key } = sim.createIssue({ summary: 'approvals' });
    await basic().transitionTo(key, 'Authorize');
    const approval = sim.addApproval(key, 'CAB', ['cab-1', 'cab-2']);
    expect(await basic().approvals(key)).toEqual([{ id: approval.id, name: 'CAB', finalDecision: 'pending' }]);
    expect(() => sim.decide(key, approval.id, 'someone-else', 'approve')).toThrow(/not an approver/);
    sim.decide(key, approval.id, 'cab-1', 'approve');
    expect(sim.issue(key)?.status).toBe('Authorize');
    sim.decide(key, approval.id, 'cab-2', 'approve');
    expect(sim.issue(key)?.status).toBe('Awaiting implementation');
    expect(await basic().approvals(key)).toEqual([{ id: approval.id, name: 'CAB', finalDecision: 'approved' }]);
  });
});

describe('the Jira simulator across restarts', () => {
  it('numbers issues from its state file, so a restarted simulator never hands out a key it gave before', () => {
    const dir = mkdtempSync(join(tmpdir(), 'jira-sim-'));
    try {
      const stateFile = join(dir, 'jira.json');
      const first = createJiraSimulator({ email: 'a@b.c', apiToken: 't', stateFile });
      const keys = [first.createIssue({}).key, first.createIssue({}).key];
      const second = createJiraSimulator({ email: 'a@b.c', apiToken: 't', stateFile });
      const next = second.createIssue({}).key;
      expect(keys).toEqual(['CHG-1', 'CHG-2']);
      expect(next).toBe('CHG-3');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

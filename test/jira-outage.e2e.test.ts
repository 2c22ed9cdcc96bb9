import axios from 'axios';
import { DEMO_JIRA_SETTINGS, GATE_PROPERTY } from '../src/itsm/jira/jira-settings';
import { ACTIONS_FIELD, CHANGE_TYPE_FIELD } from '../src/itsm/jira/jira-simulator';
import { type Stack, createAccount, startStack, uniqueAccount, waitFor } from './support/stack';

/**
 * Jira unavailable while a change runs: the simulated site answers the gateway's comment and property writes with 503,
 * then stops answering at all, for a while. The step runs and is verified meanwhile; closure-check says what waits to
 * be delivered; once Jira is back every comment and the gate property land exactly once, and the change completes.
 */
describe('a Jira outage while a change runs: nothing lost, nothing twice', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ writeBackBackoff: { initialMs: 200, maxMs: 1_000 } });
  });
  afterAll(async () => {
    stack.jiraSim.fault = undefined;
    await stack?.stop();
  });

  const closureCheck = async (key: string) =>
    (await axios.get(`${stack.apiUrl}/api/changes/jira/${key}/closure-check`, { headers: { authorization: `Bearer ${(await stack.tokenFor('change-manager')).token}` }, validateStatus: () => true })).data as {
      allowed: boolean;
      reasons: string[];
      steps: Array<{ status: string }>;
    };
  const attemptsIn = (reasons: string[]) => Math.max(0, ...reasons.map((r) => Number(/attempt (\d+)/.exec(r)?.[1] ?? 0)));

  it('the leaver runs through 503s and refused connections; afterwards its comment and the gate land once and the change completes', async () => {
    const account = uniqueAccount('jout');
    await createAccount(stack.admin, account);
    // Only the gateway's write-backs fail: the site still sends its webhooks and answers what the edge asks.
    const writes = /\/issue\/[^/]+\/(comment|properties)/;
    stack.jiraSim.fault = { kind: 'server-error', status: 503, path: writes };
    const { key } = stack.jiraSim.createIssue({
      summary: 'Offboard a service account during a Jira outage',
      [CHANGE_TYPE_FIELD]: { value: 'Normal' },
      [ACTIONS_FIELD]: JSON.stringify([{ kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' } }]),
    });
    await waitFor('the account dropped while Jira refuses writes', async () => !(await stack.accountExists(account)), 30_000);
    const waiting = await waitFor('closure-check naming the undelivered update', async () => {
      const c = await closureCheck(key);
      return c.steps?.[0]?.status === 'verified' && attemptsIn(c.reasons) >= 2 ? c : null;
    }, 30_000);
    expect(waiting.allowed).toBe(false);
    expect(waiting.reasons.join('\n')).toMatch(/waiting to deliver to jira: .*503/);
    expect(stack.jiraSim.commentTexts(key)).toEqual([]);
    expect(stack.jiraSim.property(key, GATE_PROPERTY)).toBeUndefined();

    // Then Jira stops answering at all.
    stack.jiraSim.fault = { kind: 'outage', path: writes };
    const before = attemptsIn(waiting.reasons);
    await waitFor('more attempts against the refused connections', async () => attemptsIn((await closureCheck(key)).reasons) >= before + 2, 30_000);
    expect(stack.jiraSim.commentTexts(key)).toEqual([]);

    stack.jiraSim.fault = undefined;
    await waitFor('the gate property passed', () => (stack.jiraSim.property(key, GATE_PROPERTY) as { passed?: boolean } | undefined)?.passed === true, 30_000);
    const comments = stack.jiraSim.commentTexts(key);
    const leaverNotes = comments.filter((t) => t.includes('Verified: leaver') && t.includes(account));
    expect(leaverNotes).toHaveLength(1);
    // Every marker once: no comment was posted twice by a retried delivery.
    const markers = comments.flatMap((t) => t.match(/\[changegate [^\]]+\]/g) ?? []);
    expect(new Set(markers).size).toBe(markers.length);
    await waitFor('closure allowed', async () => (await closureCheck(key)).allowed === true);
    for (const t of ['Request authorization', 'Authorize', 'Start implementation']) expect(stack.jiraSim.transition(key, t)).toEqual({ ok: true });
    await waitFor('Implementing', async () => (await stack.workflows.status('jira', key))?.sourceState === 'Implementing');
    expect(stack.jiraSim.transition(key, 'Complete')).toEqual({ ok: true });
  }, 120_000);
});

/** A status the project gained after the settings were written: the change goes on as phase `unknown`, noted, not refused. */
describe('a Jira status the settings do not map', () => {
  let stack: Stack;
  beforeAll(async () => {
    const statusPhases = Object.fromEntries(Object.entries(DEMO_JIRA_SETTINGS.statusPhases).filter(([status]) => status !== 'Awaiting implementation'));
    stack = await startStack({ jira: { settings: { ...DEMO_JIRA_SETTINGS, statusPhases } } });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('is accepted as phase unknown and said on the issue: revocations run, grants wait until a mapped status authorizes them', async () => {
    const gone = uniqueAccount('junl');
    await createAccount(stack.admin, gone);
    const joined = uniqueAccount('junj');
    const { key } = stack.jiraSim.createIssue({
      summary: 'A change through a status the settings do not know',
      [CHANGE_TYPE_FIELD]: { value: 'Normal' },
      [ACTIONS_FIELD]: JSON.stringify([
        { kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name: gone, host: '%' } },
        { kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: joined, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT1H' },
      ]),
    });
    for (const t of ['Request authorization', 'Authorize']) expect(stack.jiraSim.transition(key, t)).toEqual({ ok: true });
    await waitFor('the unmapped status in the workflow', async () => (await stack.workflows.status('jira', key))?.phase === 'unknown');
    await waitFor('the note on the issue', () => stack.jiraSim.commentTexts(key).some((t) => t.includes('State Awaiting implementation is not mapped to a changegate phase')), 30_000);
    await waitFor('the leaver verified', async () => !(await stack.accountExists(gone)), 30_000);
    expect(await stack.accountExists(joined)).toBe(false);
    // No delivery of it was refused.
    expect(stack.jiraSim.deliveries.filter((d) => d.key === key && d.status === 400)).toEqual([]);

    expect(stack.jiraSim.transition(key, 'Start implementation')).toEqual({ ok: true });
    await waitFor('the joiner granted once Implementing', async () => stack.accountExists(joined), 30_000);
  }, 120_000);
});

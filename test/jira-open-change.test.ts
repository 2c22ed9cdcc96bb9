import axios from 'axios';
import { extractActionsBlock } from '../src/itsm/jira/jira-adf';
import { JiraClient } from '../src/itsm/jira/jira-client';
import { JiraRuntime, jiraWriteBack } from '../src/itsm/jira/jira-runtime';
import { DEMO_JIRA_SETTINGS } from '../src/itsm/jira/jira-settings';
import { ACTIONS_FIELD, CHANGE_TYPE_FIELD, createJiraSimulator, type JiraSimulator } from '../src/itsm/jira/jira-simulator';

/**
 * A change the gateway opens itself in Jira (a leaked credential's rotation, a drift remediation), against the
 * simulator's REST v3: POST /rest/api/3/issue (201 {id, key, self}) and the JQL search that finds it again by its label.
 */
describe('Jira openChange: one issue per correlation id, typed and carrying the actions as configured', () => {
  let sim: JiraSimulator;
  let url: string;
  let close: () => Promise<void>;
  const EMAIL = 'int@example.com';
  const TOKEN = 'api-token-1';
  beforeAll(async () => {
    sim = createJiraSimulator({ email: EMAIL, apiToken: TOKEN });
    ({ url, close } = await sim.listen());
  });
  afterAll(async () => {
    await close();
  });
  const client = () => new JiraClient({ kind: 'basic', siteUrl: url, email: EMAIL, apiToken: TOKEN });
  const actions = JSON.stringify([{ kind: 'rotate', system: 'mysql-local', identity: { type: 'service_account', name: 'app' }, deliverTo: { system: 'vault-local', path: 'apps/app/db' } }]);

  it('an emergency change gets the configured change-type option and actions field; a retry in a fresh adapter finds it by its label', async () => {
    const open = { correlationId: 'changegate-leak-0123abcd', emergency: true, title: 'Leaked credential of app', description: 'found in a commit\nrotate now', actionsText: actions };
    const first = await jiraWriteBack(new JiraRuntime({ client: client(), settings: DEMO_JIRA_SETTINGS })).openChange!(open);
    expect(first).toEqual({ key: expect.stringMatching(/^CHG-\d+$/), recordId: expect.stringMatching(/^\d+$/), created: true });
    const issue = sim.issue(first.key)!;
    expect(issue.fields).toMatchObject({ summary: 'Leaked credential of app', labels: ['changegate-leak-0123abcd'], [CHANGE_TYPE_FIELD]: { value: 'Emergency' }, [ACTIONS_FIELD]: actions });
    const again = await jiraWriteBack(new JiraRuntime({ client: client(), settings: DEMO_JIRA_SETTINGS })).openChange!(open);
    expect(again).toEqual({ ...first, created: false });
    expect(await client().searchIssues('project = CHG AND labels = "changegate-leak-0123abcd"')).toEqual([{ id: first.recordId, key: first.key }]);
  });

  it('without an actions field, a standard change carries its actions in the description\'s changegate code block, under the configured option', async () => {
    const settings = { ...DEMO_JIRA_SETTINGS, actionsField: undefined, standardChangeType: 'Normal' };
    const opened = await jiraWriteBack(new JiraRuntime({ client: client(), settings })).openChange!({ correlationId: 'changegate-drift-42', emergency: false, title: 'Drift', description: 'bring it back', actionsText: actions });
    const issue = sim.issue(opened.key)!;
    expect(issue.fields[CHANGE_TYPE_FIELD]).toMatchObject({ value: 'Normal' });
    expect(issue.fields[ACTIONS_FIELD]).toBeNull();
    expect(extractActionsBlock(issue.fields.description)).toEqual({ found: true, text: actions });
  });

  it('refuses a correlation id that cannot be a label before calling Jira; the simulator answers bad labels and JQL it does not know with an ErrorCollection', async () => {
    const bad = await jiraWriteBack(new JiraRuntime({ client: client(), settings: DEMO_JIRA_SETTINGS })).openChange!({ correlationId: 'a" OR project = X', emergency: false, title: 't', description: 'd', actionsText: '[]' }).catch((e: unknown) => e);
    expect(bad).toMatchObject({ name: 'WriteBackError', kind: 'refused', message: expect.stringMatching(/cannot be a Jira label/) });
    const auth = { username: EMAIL, password: TOKEN };
    const created = await axios.post(`${url}/rest/api/3/issue`, { fields: { project: { key: 'CHG' }, summary: 's', labels: ['two words'] } }, { auth, validateStatus: () => true });
    expect(created.status).toBe(400);
    expect(created.data).toEqual({ errorMessages: [], errors: { labels: expect.stringMatching(/without spaces/) } });
    const search = await axios.get(`${url}/rest/api/3/search/jql`, { params: { jql: 'summary ~ "x"' }, auth, validateStatus: () => true });
    expect(search.status).toBe(400);
    expect(search.data.errorMessages[0]).toMatch(/^Error in the JQL Query/);
    const ok = await axios.post(`${url}/rest/api/3/issue`, { fields: { project: { key: 'CHG' }, summary: 's' } }, { auth });
    expect(ok.status).toBe(201);
    expect(ok.data).toEqual({ id: expect.any(String), key: expect.any(String), self: `${url}/rest/api/3/issue/${String(ok.data.id)}` });
  });
});

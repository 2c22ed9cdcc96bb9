import { adfParagraphs } from '../src/itsm/jira/jira-adf';
import { JiraClient } from '../src/itsm/jira/jira-client';
import { type JiraSimulator, type SimFault, createJiraSimulator } from '../src/itsm/jira/jira-simulator';
import { ServiceNowClient } from '../src/itsm/servicenow/servicenow-client';
import { type ListeningSimulator, type ServiceNowSimulator, createServiceNowSimulator } from '../src/itsm/servicenow/servicenow-simulator';

/**
 * Fault windows of the ServiceNow and Jira simulators that overlap in time (the fault suite opens them on one
 * timeline): each takes effect, none overwrites another, and ending one leaves the others. Seen through the real
 * clients, as the outbox sees them. Also the held answer: the write lands and its answer waits.
 */
const failure = (p: Promise<unknown>) => p.then(() => 'answered', (e: unknown) => e);
/** What each of `n` reads in a row came to: the error kind and status, or 'answered'. */
async function outcomes(n: number, read: () => Promise<unknown>): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i += 1) {
    const r = await failure(read());
    out.push(r === 'answered' ? r : `${(r as { kind: string }).kind} ${(r as { status?: number }).status ?? '-'}`);
  }
  return out;
}

describe('ServiceNow simulator: overlapping fault windows', () => {
  const USER = 'changegate.integration';
  const PASSWORD = 'windows-test-password';
  let sim: ServiceNowSimulator;
  let server: ListeningSimulator;
  let client: ServiceNowClient;
  let sysId: string;

  beforeAll(async () => {
    sim = createServiceNowSimulator({ username: USER, password: PASSWORD });
    server = await sim.listen(0);
    client = new ServiceNowClient({ baseUrl: server.url, username: USER, password: PASSWORD, timeoutMs: 300 });
    sysId = sim.createChange({ number: 'CHG0090001' }).sys_id as string;
  });
  afterEach(async () => {
    await sim.faults.restore();
  });
  afterAll(async () => {
    await server.close();
  });

  it('a 503 window opened while a 429 window is open answers first, and the 429 window then answers the rest of its count', async () => {
    sim.faults.rateLimit({ count: 3 });
    expect(await outcomes(1, () => client.getChange(sysId))).toEqual(['rate_limited 429']);
    sim.faults.serverError({ status: 503, count: 2 });
    expect(await outcomes(5, () => client.getChange(sysId))).toEqual(['transient 503', 'transient 503', 'rate_limited 429', 'rate_limited 429', 'answered']);
  });

  it('ending refused connections leaves a 429 window opened meanwhile (restore() would end both)', async () => {
    await sim.faults.refuseConnections();
    sim.faults.rateLimit({ count: 1 });
    expect(await outcomes(1, () => client.getChange(sysId))).toEqual(['transient -']);
    await sim.faults.acceptConnections();
    expect(await outcomes(2, () => client.getChange(sysId))).toEqual(['rate_limited 429', 'answered']);
  });

  it('a held answer: the work note lands, the client times out without learning it, and the answer is sent once released', async () => {
    let release = () => undefined as void;
    const released = new Promise<void>((r) => (release = r));
    let held = 0;
    sim.faults.holdAnswers({
      match: (req) => req.method === 'PATCH' && req.path.endsWith(sysId) && req.status === 200 && String((req.body as { work_notes?: unknown }).work_notes).includes('held note'),
      until: () => {
        held += 1;
        return released;
      },
    });
    expect(await failure(client.addWorkNote(sysId, '[changegate m1] held note'))).toMatchObject({ kind: 'transient', message: expect.stringMatching(/timed out/) });
    expect(sim.journal(sysId, 'work_notes').map((n) => n.value)).toContain('[changegate m1] held note');
    release();
    expect(held).toBe(1);
    // One request held, as asked: the next write is answered.
    await expect(client.addWorkNote(sysId, '[changegate m2] answered note')).resolves.toBeUndefined();
  });
});

describe('Jira simulator: overlapping fault windows', () => {
  const EMAIL = 'int@example.com';
  const TOKEN = 'api-token-windows';
  let sim: JiraSimulator;
  let close: () => Promise<void>;
  let client: JiraClient;
  let key: string;

  beforeAll(async () => {
    sim = createJiraSimulator({ email: EMAIL, apiToken: TOKEN });
    const listening = await sim.listen(0);
    close = listening.close;
    client = new JiraClient({ kind: 'basic', siteUrl: listening.url, email: EMAIL, apiToken: TOKEN }, { timeoutMs: 300 });
    key = sim.createIssue({ summary: 'windows' }).key;
  });
  afterEach(() => {
    sim.fault = undefined;
  });
  afterAll(async () => {
    await close();
  });

  it('a 503 window opened while a 429 window is open answers first, and the 429 window then answers the rest of its count', async () => {
    sim.faults.push({ kind: 'rate-limit', times: 3 });
    expect(await outcomes(1, () => client.getIssue(key, ['status']))).toEqual(['rate_limited 429']);
    sim.faults.push({ kind: 'server-error', status: 503, times: 2 });
    expect(await outcomes(5, () => client.getIssue(key, ['status']))).toEqual(['transient 503', 'transient 503', 'rate_limited 429', 'rate_limited 429', 'answered']);
    expect(sim.faults).toEqual([]);
  });

  it('ending an outage by removing it leaves a 429 window opened meanwhile', async () => {
    const outage: SimFault = { kind: 'outage' };
    sim.faults.push(outage);
    sim.faults.push({ kind: 'rate-limit', times: 1 });
    // The newest window answers first; the outage is still in force behind it.
    expect(await outcomes(2, () => client.getIssue(key, ['status']))).toEqual(['rate_limited 429', 'transient -']);
    sim.faults.push({ kind: 'rate-limit', times: 1 });
    sim.faults.splice(sim.faults.indexOf(outage), 1);
    expect(await outcomes(2, () => client.getIssue(key, ['status']))).toEqual(['rate_limited 429', 'answered']);
  });

  it('a held answer: the comment lands, the client times out without learning it, and only the request matched is held', async () => {
    let release = () => undefined as void;
    const released = new Promise<void>((r) => (release = r));
    sim.faults.push({ kind: 'hold-answer', times: 1, match: (req) => req.method === 'POST' && req.path.endsWith('/comment') && req.status === 201, until: () => released });
    // A read of the same path is not what the hold asked for.
    await expect(client.listComments(key)).resolves.toEqual([]);
    expect(await failure(client.addComment(key, adfParagraphs('[changegate m1]\nheld comment')))).toMatchObject({ kind: 'transient', message: expect.stringMatching(/timed out/) });
    expect(sim.commentTexts(key)).toEqual(['[changegate m1]\nheld comment']);
    release();
    expect(sim.faults).toEqual([]);
    await expect(client.addComment(key, adfParagraphs('[changegate m2]\nanswered'))).resolves.toMatchObject({ id: expect.any(String) });
  });
});

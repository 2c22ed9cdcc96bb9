import axios from 'axios';
import type { ClosureView } from '../src/change/closure';
import { ACTIONS_FIELD } from '../src/itsm/jira/jira-simulator';
import { asApplicationAccount } from './support/app-account';
import { TEST_ENV } from './support/test-env';
import { type Stack, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';

/** GET /api/changes: the dashboard's list of changes, grouped by where each stands at the gate. */
describe('GET /api/changes lists changes by gate state', () => {
  let stack: Stack;
  let auditor: string;
  beforeAll(async () => {
    stack = await startStack();
    auditor = (await stack.tokenFor('auditor')).token;
  });
  afterAll(async () => {
    await stack.stop();
  });

  const list = (query: string) => axios.get(`${stack.apiUrl}/api/changes?${query}`, { headers: { authorization: `Bearer ${auditor}` }, validateStatus: () => true });
  const action = (kind: string) =>
    JSON.stringify([{ kind, system: 'mysql-local', identity: { type: 'service_account', name: uniqueAccount('cl'), host: '%' }, grants: ['SELECT ON cgt_billing.*'], ...(kind === 'joiner' ? { ttl: 'PT8H' } : {}) }]);

  it('a refused step is blocked with its reason, an unapproved change waits for authorization; source, system and state filter', async () => {
    // A mover of an identity that does not exist: the target refuses it, and the step fails.
    const blocked = uniqueTicketNumber();
    stack.sim.createChange({ number: blocked, state: '-1', approval: 'approved', u_identity_actions: action('mover') });
    const waiting = uniqueTicketNumber();
    stack.sim.createChange({ number: waiting, state: '-3', approval: 'requested', u_identity_actions: action('joiner') });
    await waitFor('the mover refused', async () => (await stack.closureCheck(blocked)).data.steps?.[0]?.status === 'failed');
    await waitFor('the joiner waiting', async () => (await stack.closureCheck(waiting)).status === 200);

    const all = await list('source=servicenow&system=mysql-local&limit=500');
    expect(all.status).toBe(200);
    const byTicket = new Map((all.data.items as Array<{ ticket: string; reasons: string[] }>).map((i) => [i.ticket, i]));
    expect(byTicket.get(blocked)).toMatchObject({ source: 'servicenow', state: 'blocked', phase: 'implement', systems: ['mysql-local'], kinds: ['mover'], steps: 1 });
    expect(byTicket.get(blocked)?.reasons.length).toBeGreaterThan(0);
    expect(byTicket.get(waiting)).toMatchObject({ state: 'waiting-authorization', reasons: [expect.stringMatching(/waits for the change to be approved and in Implement/)] });

    const onlyBlocked = await list('state=blocked&limit=500');
    expect(onlyBlocked.data.items.map((i: { state: string }) => i.state)).toEqual(onlyBlocked.data.items.map(() => 'blocked'));
    expect(onlyBlocked.data.items.map((i: { ticket: string }) => i.ticket)).toContain(blocked);
    expect((await list('system=no-such-system')).data.items).toEqual([]);
    expect((await list('source=jira&limit=500')).data.items.map((i: { ticket: string }) => i.ticket)).not.toContain(blocked);
  });

  it('the kind filter keeps changes that carry an action of that kind', async () => {
    const mover = uniqueTicketNumber();
    stack.sim.createChange({ number: mover, state: '-1', approval: 'approved', u_identity_actions: action('mover') });
    const joiner = uniqueTicketNumber();
    stack.sim.createChange({ number: joiner, state: '-3', approval: 'requested', u_identity_actions: action('joiner') });
    await waitFor('both changes listed', async () => {
      const tickets = (await list('limit=500')).data.items.map((i: { ticket: string }) => i.ticket);
      return tickets.includes(mover) && tickets.includes(joiner);
    });
    const movers = (await list('kind=mover&limit=500')).data.items as Array<{ ticket: string; kinds: string[] }>;
    expect(movers.map((i) => i.ticket)).toContain(mover);
    expect(movers.map((i) => i.ticket)).not.toContain(joiner);
    expect(movers.every((i) => i.kinds.includes('mover'))).toBe(true);
    const joiners = (await list('kind=joiner&system=mysql-local&limit=500')).data.items as Array<{ ticket: string }>;
    expect(joiners.map((i) => i.ticket)).toContain(joiner);
    expect(joiners.map((i) => i.ticket)).not.toContain(mover);
  });

  it('ageing counts open changes by whole days since the gateway first received the ticket, and leaves cancelled ones out', async () => {
    const ageing = (query = '') => axios.get(`${stack.apiUrl}/api/changes/ageing${query}`, { headers: { authorization: `Bearer ${auditor}` }, validateStatus: () => true });
    const inBracket = (data: { brackets: Array<{ bracket: string; tickets: Array<{ ticket: string }> }> }, ticket: string) =>
      data.brackets.filter((b) => b.tickets.some((t) => t.ticket === ticket)).map((b) => b.bracket);
    // A Jira change: few enough in the run's database that the youngest bracket lists it within the limit.
    const { key: fresh } = stack.jiraSim.createIssue({ summary: 'ageing', [ACTIONS_FIELD]: action('joiner') });
    const old = uniqueTicketNumber();
    const record = stack.sim.createChange({ number: old, state: '-3', approval: 'requested', u_identity_actions: action('joiner') });
    await waitFor('both changes listed', async () => {
      const tickets = (await list('kind=joiner&limit=500')).data.items.map((i: { ticket: string }) => i.ticket);
      return tickets.includes(fresh) && tickets.includes(old);
    });
    // The first delivery of `old` as if it came 40 days ago; a later one arrives now and must not make it younger.
    const deliveries = `\`${TEST_ENV.database}\`.webhook_deliveries`;
    await stack.admin.query(`UPDATE ${deliveries} SET received_at = NOW(3) - INTERVAL 40 DAY WHERE source = ? AND ticket_number = ?`, ['servicenow', old]);
    stack.sim.updateChange(record.sys_id as string, { approval: 'approved' });
    await waitFor('the second delivery of the old change', async () => {
      const [rows] = await stack.admin.query(`SELECT COUNT(*) AS n FROM ${deliveries} WHERE source = ? AND ticket_number = ?`, ['servicenow', old]);
      return Number((rows as Array<{ n: number }>)[0]?.n) >= 2;
    });

    const res = await ageing('?kind=joiner&limit=500');
    expect(res.status).toBe(200);
    expect(res.data.basis).toBe('first-delivery');
    expect(res.data.brackets.map((b: { label: string }) => b.label)).toEqual(['< 1 d', '1–5 d', '6–30 d', '31–90 d', '> 90 d']);
    expect(inBracket(res.data, fresh)).toEqual(['under-1d']);
    expect(inBracket(res.data, old)).toEqual(['31-90d']);
    const oldItem = res.data.brackets[3].tickets.find((t: { ticket: string }) => t.ticket === old);
    expect(oldItem).toMatchObject({ source: 'servicenow', ageDays: 40, kinds: ['joiner'] });
    for (const b of res.data.brackets) expect(b.count).toBeGreaterThanOrEqual(b.tickets.length);
    // The list of changes carries the same basis.
    const listed = (await list('source=servicenow&limit=500')).data.items.find((i: { ticket: string }) => i.ticket === old);
    expect(Date.now() - Date.parse(listed.receivedAt)).toBeGreaterThan(39 * 86_400_000);

    // Cancelled: no longer open, so in no bracket.
    stack.sim.updateChange(record.sys_id as string, { state: '4' });
    await waitFor('the old change cancelled', async () => inBracket((await ageing('?source=servicenow&limit=500')).data, old).length === 0);
    expect(inBracket((await ageing('?source=jira&limit=500')).data, fresh)).toEqual(['under-1d']);
    const other = (await ageing('?kind=mover&limit=500')).data;
    expect(inBracket(other, fresh)).toEqual([]);
    const bad = await ageing('?kind=promote&limit=0&state=blocked');
    expect(bad.status).toBe(400);
    expect(bad.data.error.issues).toEqual(
      expect.arrayContaining([
        { path: 'query.kind', message: expect.stringMatching(/^must be an action kind \(.*joiner.*\)$/) },
        { path: 'query.limit', message: 'must be a whole number from 1 to 500' },
        { path: 'query', message: "unknown filter 'state' (filters: source, system, kind, limit)" },
      ]),
    );
  });

  it("a verdict forged through the application account (unsealed, newest) does not move a change to allowed", async () => {
    const blocked = uniqueTicketNumber();
    stack.sim.createChange({ number: blocked, state: '-1', approval: 'approved', u_identity_actions: action('mover') });
    await waitFor('the mover refused', async () => (await stack.closureCheck(blocked)).data.steps?.[0]?.status === 'failed');
    const forged: ClosureView = { ticket: blocked, allowed: true, reasons: [], ticketState: '-1', phase: 'implement', steps: [] };
    await asApplicationAccount(stack.admin, async (app) => {
      await app.query('INSERT INTO closure_verdicts (ticket_key, evaluated_version, allowed, body, created_at) VALUES (?, ?, 1, ?, NOW(3))', [`servicenow:${blocked}`, 2 ** 50, JSON.stringify(forged)]);
    });
    const items = (await list('source=servicenow&limit=500')).data.items as Array<{ ticket: string; state: string; steps: number }>;
    expect(items.filter((i) => i.ticket === blocked)).toEqual([expect.objectContaining({ state: 'blocked', steps: 1 })]);
    // Filtered by a system: the forged row names none, the genuine view does.
    expect((await list('system=mysql-local&limit=500')).data.items.map((i: { ticket: string }) => i.ticket)).toContain(blocked);
  });

  it('refuses a bad query with what and where', async () => {
    const res = await list('state=stuck&colour=red&source=nope&kind=promote');
    expect(res.status).toBe(400);
    expect(res.data.error.issues).toEqual(
      expect.arrayContaining([
        { path: 'query', message: "unknown filter 'colour' (filters: source, system, kind, state, limit)" },
        { path: 'query.kind', message: 'must be an action kind (joiner, leaver, mover, rotate, deploy, decommission)' },
        { path: 'query.state', message: 'must be one of waiting-authorization, running, blocked, allowed, closed' },
        { path: 'query.source', message: expect.stringContaining('must be a registered ticket source') },
      ]),
    );
  });
});

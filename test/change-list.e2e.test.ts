import axios from 'axios';
import type { ClosureView } from '../src/change/closure';
import { asApplicationAccount } from './support/app-account';
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
    const res = await list('state=stuck&colour=red&source=nope');
    expect(res.status).toBe(400);
    expect(res.data.error.issues).toEqual(
      expect.arrayContaining([
        { path: 'query', message: "unknown filter 'colour' (filters: source, system, state, limit)" },
        { path: 'query.state', message: 'must be one of waiting-authorization, running, blocked, allowed, closed' },
        { path: 'query.source', message: expect.stringContaining('must be a registered ticket source') },
      ]),
    );
  });
});

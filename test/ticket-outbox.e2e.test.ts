import type { ChangeState } from '../src/change';
import { type Stack, createAccount, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';

/**
 * The ticket outbox end to end (real Temporal, real MariaDB, the ServiceNow simulator with its faults switched on):
 * what a change writes to its ticket is recorded first and delivered however long ServiceNow is unavailable, each
 * note once, the gate only with the notes that belong to it; only a refusal that needs a person blocks for good.
 */
const leavers = (...names: string[]) => JSON.stringify(names.map((name) => ({ kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name, host: '%' } })));

/** Every `[changegate <marker>]` tag in the ticket's work notes, in order. */
function markers(stack: Stack, sysId: string): string[] {
  return stack.sim.journal(sysId, 'work_notes').flatMap((n) => [...n.value.matchAll(/\[changegate ([^\]]+)\]/g)].map((m) => m[1]));
}

async function closureReasons(stack: Stack, number: string): Promise<string> {
  const r = await stack.closureCheck(number);
  return r.status === 200 ? (r.data.reasons as string[]).join('\n') : '';
}

describe('ticket outbox: nothing lost while ServiceNow is down (real Temporal and MariaDB, simulated ServiceNow with faults)', () => {
  let stack: Stack;
  beforeAll(async () => {
    // Short back-off, so that attempts follow each other quickly; Retry-After, when sent, still rules.
    stack = await startStack({ writeBackBackoff: { initialMs: 20, maxMs: 100 } });
  });
  afterAll(async () => {
    await stack.sim.faults.restore();
    await stack.stop();
  });
  afterEach(async () => {
    await stack.sim.faults.restore();
  });

  const status = (number: string): Promise<ChangeState | null> => stack.workflows.status('servicenow', number);

  it('through 503s, 429s and refused connections the steps keep running, and afterwards every note and the gate are on the ticket exactly once and closure opens', async () => {
    const [first, second] = [uniqueAccount('ob'), uniqueAccount('ob')];
    await createAccount(stack.admin, first);
    await createAccount(stack.admin, second);
    const number = uniqueTicketNumber();

    // ServiceNow answers 503 with Retry-After to every API call; its business rules still fire the webhook.
    stack.sim.faults.serverError({ status: 503, retryAfterSeconds: 1 });
    const change = stack.sim.createChange({ number, type: 'emergency', state: '-1', u_identity_actions: leavers(first) });
    const sysId = change.sys_id as string;
    await waitFor('the first account to be dropped during the outage', async () => !(await stack.accountExists(first)));
    await waitFor('closure-check to wait on the 503', async () => /waiting to deliver to servicenow: Service Unavailable/.test(await closureReasons(stack, number)));
    expect((await stack.closureCheck(number)).data.allowed).toBe(false);

    // Now throttled: a person adds a second leaver meanwhile, and it runs and is verified while nothing is delivered.
    await stack.sim.faults.restore();
    stack.sim.faults.rateLimit({ retryAfterSeconds: 1 });
    stack.sim.updateChange(sysId, { u_identity_actions: leavers(first, second) });
    await waitFor('the second account to be dropped while throttled', async () => !(await stack.accountExists(second)));
    await waitFor('both steps verified while throttled', async () => (await status(number))?.steps.filter((s) => s.status === 'verified').length === 2);
    await waitFor('closure-check to wait on the 429', async () => /waiting to deliver to servicenow: Rate limit exceeded/.test(await closureReasons(stack, number)));

    // Then the instance is gone altogether.
    await stack.sim.faults.restore();
    await stack.sim.faults.refuseConnections();
    await waitFor('closure-check to wait on the refused connection', async () => /waiting to deliver to servicenow: .*ECONNREFUSED/.test(await closureReasons(stack, number)));
    expect(stack.sim.journal(sysId, 'work_notes')).toEqual([]);
    expect(stack.sim.getChange(sysId)?.u_identity_cleanup).not.toBe('verified');
    expect(stack.sim.faults.injected).toBeGreaterThan(1);

    await stack.sim.faults.restore();
    const open = await waitFor('closure-check to allow closure once delivered', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed === true ? r : null;
    }, 30_000);
    expect(open.data.reasons).toEqual([]);
    const ticket = stack.sim.getChange(sysId);
    expect(ticket?.u_identity_cleanup).toBe('verified');
    // Exactly the notes the run would have written without the outage, each once: both leavers, and "closure allowed"
    // for each identity-actions text that was verified (the first before the second leaver was added, then both).
    // The last batch publishes the view before the workflow hears it landed: read its state once it has.
    const state = await waitFor('the workflow to have taken in the last delivery', async () => {
      const s = await status(number);
      return s?.outbox?.pending.length === 0 ? s : null;
    });
    const tags = markers(stack, sysId);
    expect(new Set(tags).size).toBe(tags.length);
    expect([...tags].sort()).toEqual([...(state?.notesWritten ?? [])].sort());
    expect(tags.filter((m) => m.startsWith('leaver:'))).toHaveLength(2);
    expect(tags.filter((m) => m.startsWith('gate:')).length).toBeGreaterThanOrEqual(1);
    // The last save carried the gate for the actions the ticket holds now, with the last of the notes.
    expect(ticket?.u_identity_cleanup_digest).toBe(state?.actionsDigest);
    expect(stack.sim.journal(sysId, 'work_notes').at(-1)?.value).toMatch(/\[changegate gate:\d+\] Identity cleanup verified: closure allowed\.$/);
    expect(state?.outbox).toEqual({ pending: [] });
    expect(state?.writeBackErrors).toEqual([]);
  }, 90_000);

  it('a 403 ACL refusal is not retried: closure stays blocked with the reason and the gate is not shown as passed, until the ticket changes after the fix and the update is sent once more', async () => {
    const account = uniqueAccount('ob');
    await createAccount(stack.admin, account);
    const number = uniqueTicketNumber();
    stack.sim.faults.refuseWrites();
    const change = stack.sim.createChange({ number, type: 'emergency', state: '-1', u_identity_actions: leavers(account) });
    await waitFor('the account to be dropped', async () => !(await stack.accountExists(account)));
    const state = await waitFor('the refusal to be recorded with nothing left to deliver', async () => {
      const s = await status(number);
      return s && s.writeBackErrors.length > 0 && s.outbox?.pending.length === 0 && !s.outbox.waiting ? s : null;
    });
    expect(state.steps[0]?.status).toBe('verified');
    const check = await waitFor('closure-check to give the refusal', async () => {
      const r = await stack.closureCheck(number);
      return r.data.reasons?.some((x: string) => /evidence could not be written to the ticket: User Not Authorized: ACL Exception/.test(x)) ? r : null;
    });
    expect(check.data.allowed).toBe(false);
    expect(check.data.reasons.join('\n')).not.toMatch(/waiting to deliver/);
    // The notes batch and then the pending gate were each refused once; neither is tried again.
    expect(stack.sim.faults.injected).toBeGreaterThan(0);
    expect(stack.sim.getChange(change.sys_id as string)?.u_identity_cleanup).not.toBe('verified');
    expect(stack.sim.journal(change.sys_id as string, 'work_notes')).toEqual([]);

    // An administrator fixes the ACL; the change moves on to Review, and that delivery sends the held update again.
    await stack.sim.faults.restore();
    stack.sim.updateChange(change.sys_id as string, { state: '0' });
    const open = await waitFor('closure allowed after the fix', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed === true ? r.data : null;
    });
    expect(open.reasons).toEqual([]);
    expect(stack.sim.getChange(change.sys_id as string)?.u_identity_cleanup).toBe('verified');
    const tags = markers(stack, change.sys_id as string);
    expect(tags.filter((m) => m.startsWith('leaver:'))).toHaveLength(1);
    expect(tags.filter((m) => m.startsWith('gate:'))).toHaveLength(1);
    expect((await status(number))?.writeBackErrors).toEqual([]);
  }, 60_000);
});

import type { temporal } from '@temporalio/proto';
import { type Stack, connectorsFile, createAccount, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { startStatementTap, type StatementTap } from './support/statement-tap';
import { TEST_ENV } from './support/test-env';

/**
 * A cancelled change is rolled back as a saga: the undo of each verified step runs one after the other, the newest
 * verification first, each read back from the target and evidenced like the step it reverses.
 */
describe('cancelling or rejecting a change rolls back its verified grants in reverse order of verification', () => {
  let stack: Stack;
  /**
   * Two more systems on the same MariaDB, each reached through a tap that can hold one statement at the server's door
   * until the test lets it through: how a grant is kept in flight while the rollback starts, and an undo kept running.
   */
  const held = { grantOf: '', dropOf: '', grantHeld: false, dropHeld: false, releaseGrant: () => {}, releaseDrop: () => {} };
  const grantGate = () => new Promise<void>((resolve) => (held.releaseGrant = resolve));
  const dropGate = () => new Promise<void>((resolve) => (held.releaseDrop = resolve));
  const taps: StatementTap[] = [];
  beforeAll(async () => {
    const mariadb = { host: '127.0.0.1', port: TEST_ENV.mariadbPort };
    taps.push(
      await startStatementTap(mariadb, async (sql) => {
        if (held.dropOf && sql === `DROP USER IF EXISTS '${held.dropOf}'@'%'`) {
          held.dropHeld = true;
          await dropGate();
        }
      }),
      await startStatementTap(mariadb, async (sql) => {
        if (held.grantOf && sql.startsWith('GRANT ') && sql.endsWith(` TO '${held.grantOf}'@'%'`)) {
          held.grantHeld = true;
          await grantGate();
        }
      }),
    );
    // A second connector instance on the same MariaDB: two systems as far as the gateway is concerned.
    const [local] = connectorsFile().connectors;
    stack = await startStack({
      extraConnectors: [
        { ...local!, name: 'mysql-second' },
        { ...local!, name: 'mysql-held-undo', host: '127.0.0.1', port: taps[0]!.port },
        { ...local!, name: 'mysql-held-grant', host: '127.0.0.1', port: taps[1]!.port },
      ],
    });
  });
  afterAll(async () => {
    held.releaseGrant();
    held.releaseDrop();
    await stack?.stop();
    for (const tap of taps) await tap.stop();
  });

  it('a joiner on two systems, cancelled after both are granted, revokes the second grant (verified and recorded) before the first, and both accounts are gone', async () => {
    const first = uniqueAccount('sgA');
    const second = uniqueAccount('sgB');
    const number = uniqueTicketNumber();
    const joiner = (system: string, name: string) => ({ kind: 'joiner', system, identity: { type: 'service_account', name, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT8H' });
    const change = stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: JSON.stringify([joiner('mysql-local', first), joiner('mysql-second', second)]) });
    const key = `servicenow:${number}`;
    const granted = await waitFor('both grants verified and recorded', async () => {
      const rows = (await stack.evidence.list(key)).filter((r) => r.outcome === 'granted' && r.verified);
      return rows.length === 2 ? rows : null;
    });
    expect(await stack.accountExists(first)).toBe(true);
    expect(await stack.accountExists(second)).toBe(true);
    // The rows are written before the workflow hears of them: cancel once it knows both grants are verified (a grant
    // it learns of later is undone after the rollback in progress, a case of its own below).
    await waitFor('the workflow knows both grants verified', async () => {
      const s = await stack.workflows.status('servicenow', number);
      return s?.steps.filter((st) => st.status === 'verified').length === 2 ? s : null;
    });

    stack.sim.updateChange(change.sys_id as string, { state: '4' });
    const expired = await waitFor('both revokes recorded', async () => {
      const rows = (await stack.evidence.list(key)).filter((r) => r.outcome === 'expired');
      return rows.length === 2 ? rows : null;
    });

    // Grants in the order they were verified (the evidence row's verifiedAt; the ticket's order breaks a tie);
    // revokes in the order they were recorded (the chain's seq).
    const systems = ['mysql-local', 'mysql-second'];
    const grantOrder = [...granted]
      .sort((x, y) => (x.verifiedAt ?? '').localeCompare(y.verifiedAt ?? '') || systems.indexOf(x.system) - systems.indexOf(y.system))
      .map((r) => r.stepId.replace(/^joiner:/, ''));
    const revokeOrder = [...expired].sort((x, y) => x.seq - y.seq);
    expect(revokeOrder.map((r) => r.stepId.replace(/^expiry:/, ''))).toEqual([...grantOrder].reverse());
    expect(revokeOrder.map((r) => r.verified)).toEqual([true, true]);
    // One after the other: the first grant's revoke starts only once the second's is verified.
    expect(Date.parse(revokeOrder[1]!.startedAt)).toBeGreaterThanOrEqual(Date.parse(revokeOrder[0]!.verifiedAt!));
    expect(revokeOrder.map((r) => r.observedState)).toEqual([expect.objectContaining({ exists: false }), expect.objectContaining({ exists: false })]);

    expect(await stack.accountExists(first)).toBe(false);
    expect(await stack.accountExists(second)).toBe(false);
    const done = await waitFor('workflow completed', async () => {
      const d = await stack.workflows.client.workflow.getHandle(`change-servicenow-${number}`).describe();
      return d.status.name === 'COMPLETED' ? d : null;
    });
    expect(done.status.name).toBe('COMPLETED');
  });

  it('a rejected change (sent back to New) is unauthorized again: its grants are rolled back, newest first and each verified, its revocations stay', async () => {
    const granted = uniqueAccount('rjA');
    const leaver = uniqueAccount('rjL');
    await createAccount(stack.admin, leaver);
    const number = uniqueTicketNumber();
    const actions = [
      { kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name: leaver, host: '%' } },
      { kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: granted, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT8H' },
    ];
    const change = stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: JSON.stringify(actions) });
    const key = `servicenow:${number}`;
    await waitFor('grant and revocation verified', async () => {
      const rows = await stack.evidence.list(key);
      return rows.some((r) => r.outcome === 'granted' && r.verified) && rows.some((r) => r.outcome === 'revoked' && r.verified);
    });
    // ServiceNow's rejection: approval rejected, the change back in New.
    stack.sim.updateChange(change.sys_id as string, { state: '-5', approval: 'rejected' });
    const rolledBack = await waitFor('the grant rolled back', async () => (await stack.evidence.list(key)).find((r) => r.outcome === 'expired'));
    expect(rolledBack).toMatchObject({ verified: true, observedState: expect.objectContaining({ exists: false }) });
    expect(await stack.accountExists(granted)).toBe(false);
    expect(await stack.accountExists(leaver)).toBe(false);
    const check = await waitFor('closure-check showing the rollback', async () => {
      const r = await stack.closureCheck(number);
      return r.data.steps?.find((st: { kind: string }) => st.kind === 'joiner')?.cleanup?.status === 'verified' ? r.data : null;
    });
    expect(check.phase).toBe('rejected');
    expect(check.steps.find((st: { kind: string }) => st.kind === 'leaver')).toMatchObject({ status: 'verified' });
  });

  it('a grant the workflow learns of while the rollback runs is undone after the undo in progress, never alongside it', async () => {
    const early = uniqueAccount('slA');
    const late = uniqueAccount('slB');
    held.dropOf = early;
    held.grantOf = late;
    const number = uniqueTicketNumber();
    const joiner = (system: string, name: string) => ({ kind: 'joiner', system, identity: { type: 'service_account', name, host: '%' }, grants: ['SELECT ON cgt_billing.*'], ttl: 'PT8H' });
    const change = stack.sim.createChange({ number, state: '-1', approval: 'approved', u_identity_actions: JSON.stringify([joiner('mysql-held-undo', early), joiner('mysql-held-grant', late)]) });
    const key = `servicenow:${number}`;
    const workflow = stack.workflows.client.workflow.getHandle(`change-servicenow-${number}`);
    const steps = await waitFor('the first grant verified, the second held at its target', async () => {
      const s = await stack.workflows.status('servicenow', number);
      const first = s?.steps.find((st) => st.action.system === 'mysql-held-undo');
      return held.grantHeld && first?.status === 'verified' ? s!.steps : null;
    });
    const lateStep = steps.find((st) => st.action.system === 'mysql-held-grant')!;
    expect(lateStep.status).toBe('running');

    // Cancelled: the first grant's undo starts and is held at its target; then the second grant lands.
    stack.sim.updateChange(change.sys_id as string, { state: '4' });
    await waitFor("the first grant's undo held at its target", async () => held.dropHeld || null);
    held.releaseGrant();
    // The workflow task that learnt of the second grant has ended (its commands are in the history), and the undo in
    // progress is still held, so nothing else can have ended it.
    const history = await waitFor('the workflow has taken in the second grant', async () => {
      const h = await workflow.fetchHistory();
      const done = completionOf(h.events ?? [], lateStep.stepId);
      return done !== undefined && (h.events ?? []).some((e) => e.workflowTaskCompletedEventAttributes && Number(e.eventId) > done) ? h : null;
    });
    expect(scheduledSteps(history.events ?? [])).not.toContain(`expiry:${lateStep.action.actionId}`);
    expect(await stack.accountExists(late)).toBe(true);

    held.releaseDrop();
    const expired = await waitFor('both undos recorded', async () => {
      const rows = (await stack.evidence.list(key)).filter((r) => r.outcome === 'expired');
      return rows.length === 2 ? rows : null;
    });
    const [first, second] = [...expired].sort((x, y) => x.seq - y.seq);
    expect([first!.system, second!.system]).toEqual(['mysql-held-undo', 'mysql-held-grant']);
    expect([first!.verified, second!.verified]).toEqual([true, true]);
    expect(Date.parse(second!.startedAt)).toBeGreaterThanOrEqual(Date.parse(first!.verifiedAt!));
    expect(await stack.accountExists(early)).toBe(false);
    expect(await stack.accountExists(late)).toBe(false);
    const check = await waitFor('closure-check showing both undone', async () => {
      const r = await stack.closureCheck(number);
      const cleanups = (r.data.steps ?? []).map((st: { cleanup?: { status: string } }) => st.cleanup?.status);
      return cleanups.length === 2 && cleanups.every((c: string | undefined) => c === 'verified') ? r.data : null;
    });
    expect(check.phase).toBe('cancelled');
  });
});

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** The step id each applyVerifyRecord scheduling in the history carries, in order. */
function scheduledSteps(events: HistoryEvent[]): string[] {
  return events.flatMap((e) => {
    const a = e.activityTaskScheduledEventAttributes;
    if (a?.activityType?.name !== 'applyVerifyRecord') return [];
    const data = a.input?.payloads?.[0]?.data;
    return data ? [(JSON.parse(Buffer.from(data).toString('utf8')) as { stepId: string }).stepId] : [];
  });
}

/** The event id at which the applyVerifyRecord of `stepId` completed, if it has. */
function completionOf(events: HistoryEvent[], stepId: string): number | undefined {
  const scheduled = new Set(
    events
      .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'applyVerifyRecord' && scheduledSteps([e])[0] === stepId)
      .map((e) => Number(e.eventId)),
  );
  const done = events.find((e) => e.activityTaskCompletedEventAttributes && scheduled.has(Number(e.activityTaskCompletedEventAttributes.scheduledEventId)));
  return done ? Number(done.eventId) : undefined;
}

import type { ChildProcess } from 'node:child_process';
import type { ConnectorsFile } from '../src/connectors/registry';
import { type FlakyPort, startFlakyPort } from './support/flaky-port';
import { type Stack, connectorsFile, createAccount, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { attemptsOf } from './support/history-text';
import { startStatementTap } from './support/statement-tap';
import { killHard, startWorkerProcess } from './support/worker-process';

describe('a worker process killed between two steps, or in the middle of one', () => {
  let stack: Stack;
  let flaky: FlakyPort;
  let flakyEntry: ConnectorsFile['connectors'][number];
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    // The same MariaDB behind a port that can stall what the worker sends, to hold a step in the middle of its call.
    flaky = await startFlakyPort({ host: '127.0.0.1', port: 3306 });
    flakyEntry = { ...connectorsFile().connectors[0]!, name: 'mysql-stalled', port: flaky.port };
    stack = await startStack({ inProcessWorker: false, extraConnectors: [flakyEntry] });
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) await killHard(c);
    await stack.stop();
    await flaky.stop();
  });

  it('is replaced by a new one that completes the ticket with no step done twice', async () => {
    const leaving = uniqueAccount('leave');
    const joining = uniqueAccount('join');
    await createAccount(stack.admin, leaving);
    const number = uniqueTicketNumber();
    const actions = [
      { kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name: leaving, host: '%' } },
      { kind: 'joiner', system: 'mysql-local', identity: { type: 'service_account', name: joining, host: '%' }, grants: ['SELECT ON cgt_reporting.*'], ttl: 'PT1H' },
    ];
    const change = stack.sim.createChange({ number, state: '-3', approval: 'requested', u_identity_actions: JSON.stringify(actions) });
    const sysId = change.sys_id as string;

    const first = await startWorkerProcess(stack);
    children.push(first);
    await waitFor('leaver verified and noted', () => stack.sim.journal(sysId, 'work_notes').some((n) => n.value.includes('Verified: leaver')), 45_000);
    await killHard(first);

    // The approval arrives while no worker runs: Temporal holds it. The delivery awaited is the one carrying the
    // approval's version (the gateway's own work notes bump the record too, and are delivered as well).
    const approved = stack.sim.updateChange(sysId, { state: '-1', approval: 'approved' });
    await waitFor('the approval delivered', () => stack.sim.deliveries.some((d) => d.sysId === sysId && d.modCount === approved.sys_mod_count && d.status === 202));
    expect((await stack.workflows.client.workflow.getHandle(`change-servicenow-${number}`).describe()).status.name).toBe('RUNNING');

    const second = await startWorkerProcess(stack);
    children.push(second);
    const check = await waitFor('closure allowed', async () => {
      const r = await stack.closureCheck(number);
      return r.data.allowed ? r : null;
    }, 45_000);
    expect(check.data.steps.map((s: { kind: string; status: string }) => [s.kind, s.status])).toEqual([
      ['leaver', 'verified'],
      ['joiner', 'verified'],
    ]);
    expect(await stack.accountExists(leaving)).toBe(false);
    expect(await stack.accountExists(joining)).toBe(true);

    // Exactly one evidence row and one work note per step, and the leaver's activity was scheduled once.
    const rows = await stack.evidence.list(`servicenow:${number}`);
    expect(rows.map((r) => r.outcome)).toEqual(['revoked', 'granted']);
    // The joiner's note may land in the outbox's next batch, just after closure-check says allowed.
    await waitFor('the joiner note', () => stack.sim.journal(sysId, 'work_notes').some((n) => n.value.includes('Verified: joiner')));
    const notes = stack.sim.journal(sysId, 'work_notes').map((n) => n.value);
    expect(notes.filter((n) => n.includes('Verified: leaver'))).toHaveLength(1);
    expect(notes.filter((n) => n.includes('Verified: joiner'))).toHaveLength(1);
    const history = await stack.workflows.client.workflow.getHandle(`change-servicenow-${number}`).fetchHistory();
    // Each step is one activity (applyVerifyRecord); what it does is in its input.
    const operations = (history.events ?? [])
      .map((e) => e.activityTaskScheduledEventAttributes)
      .filter((a) => a?.activityType?.name === 'applyVerifyRecord')
      .map((a) => (JSON.parse(Buffer.from(a?.input?.payloads?.[0]?.data ?? new Uint8Array()).toString('utf8')) as { operation: { op: string } }).operation.op);
    expect(operations).toEqual(['revoke', 'grant']);
    await stack.admin.query('DROP USER IF EXISTS ?@?', [joining, '%']);
  }, 150_000);

  it('killed while its target call hangs, the step is retried on a new worker once the heartbeat lapses, and done once', async () => {
    // Only this test's workers poll the queue (the last test's second worker knows no mysql-stalled).
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) await killHard(c);
    const leaving = uniqueAccount('hang');
    await createAccount(stack.admin, leaving);
    const number = uniqueTicketNumber();
    const first = await startWorkerProcess(stack, [flakyEntry]);
    children.push(first);
    // Nothing the worker sends reaches MariaDB from now on: the leaver's call starts and hangs.
    flaky.hold();
    stack.sim.createChange({ number, state: '-1', u_identity_actions: JSON.stringify([{ kind: 'leaver', system: 'mysql-stalled', identity: { type: 'service_account', name: leaving, host: '%' } }]) });
    const handle = stack.workflows.client.workflow.getHandle(`change-servicenow-${number}`);
    await waitFor('the step activity running', async () => {
      const pending = (await handle.describe().catch(() => null))?.raw.pendingActivities ?? [];
      // PendingActivityState STARTED (2): a worker has it, and is in the call.
      return pending.some((a) => a.activityType?.name === 'applyVerifyRecord' && Number(a.state) === 2);
    }, 45_000);
    await killHard(first);
    expect(await stack.accountExists(leaving)).toBe(true);
    flaky.release();

    const second = await startWorkerProcess(stack, [flakyEntry]);
    children.push(second);
    // Within the heartbeat timeout (15 s) and a retry, not the 2-minute start-to-close timeout.
    await waitFor('closure allowed', async () => (await stack.closureCheck(number)).data.allowed === true, 45_000);
    expect(await stack.accountExists(leaving)).toBe(false);
    const rows = await stack.evidence.list(`servicenow:${number}`);
    expect(rows.map((r) => [r.outcome, r.verified])).toEqual([['revoked', true]]);
    // Scheduled once, and the attempt that completed was the second: the first died with its worker.
    expect(attemptsOf((await handle.fetchHistory()).events ?? [], 'applyVerifyRecord')).toEqual([2]);
  }, 150_000);

  it("killed while a verified mover opens its certification trigger, the trigger is retried on a new worker once the heartbeat lapses: the mover's note lands in seconds, not after the 2-minute start-to-close timeout", async () => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) await killHard(c);
    const moving = uniqueAccount('move');
    await createAccount(stack.admin, moving);
    const number = uniqueTicketNumber();
    // The worker reaches its own database through a tap: the trigger's first query about this change waits there
    // until the worker has been killed.
    let atTrigger = false;
    let release = () => undefined as void;
    const released = new Promise<void>((r) => (release = r));
    const tap = await startStatementTap({ host: '127.0.0.1', port: 3306 }, async (sql) => {
      if (!sql.includes('`certification_items`') || !sql.includes(`'servicenow:${number}'`)) return;
      atTrigger = true;
      await released;
    });
    try {
      const first = await startWorkerProcess(stack, [], { databasePort: tap.port });
      children.push(first);
      const change = stack.sim.createChange({
        number, state: '-1', approval: 'approved',
        u_identity_actions: JSON.stringify([{ kind: 'mover', system: 'mysql-local', identity: { type: 'service_account', name: moving, host: '%' }, grants: ['SELECT ON cgt_reporting.*'], ttl: 'PT1H' }]),
      });
      await waitFor('the certification trigger running', () => atTrigger, 45_000);
      await killHard(first);
      release();
      children.push(await startWorkerProcess(stack, [], { databasePort: tap.port }));
      // Within the heartbeat timeout (15 s) and a retry; the note waits on the trigger.
      await waitFor('the mover noted', () => stack.sim.journal(change.sys_id as string, 'work_notes').some((n) => n.value.includes('Verified: mover')), 45_000);
      const events = (await stack.workflows.client.workflow.getHandle(`change-servicenow-${number}`).fetchHistory()).events ?? [];
      expect(attemptsOf(events, 'certifyStep')).toEqual([2]);
    } finally {
      release();
      for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) await killHard(c);
      await tap.stop();
      await stack.admin.query('DROP USER IF EXISTS ?@?', [moving, '%']);
    }
  }, 150_000);
});

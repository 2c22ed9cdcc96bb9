import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { NativeConnection, Worker } from '@temporalio/worker';
import { type ConnectorActivities, createTicketActivities } from '../activities';
import { closureVerdict } from '../src/change';
import type { ClosureView, TicketRef, TicketSnapshot } from '../src/change';
import { GrammarRegistry } from '../src/connectors/registry';
import { parseChangeRecord } from '../src/itsm/servicenow/servicenow-change';
import { ServiceNowClient } from '../src/itsm/servicenow/servicenow-client';
import { GATE_DIGEST_FIELD, GATE_FIELD } from '../src/itsm/servicenow/servicenow-gate';
import { createServiceNowSimulator, type ServiceNowSimulator } from '../src/itsm/servicenow/servicenow-simulator';
import { type TicketWriteBack, WriteBackError } from '../src/itsm/source';
import { servicenowWriteBack } from '../src/itsm/servicenow/servicenow-source';
import { ChangeWorkflows } from '../src/temporal/temporal-client';
import { closureRules } from '../workflows/kinds/registry';
import { type ProxiedRequest, type ProxyFault, ticketProxy } from './support/ticket-proxy';
import { connectorsFile, leaverActions, quietRuntime, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { temporalAddress } from './support/test-env';

/**
 * The loop's write-back (one activity per turn, one PATCH for ServiceNow) between the real workflow on the real
 * Temporal server and the ServiceNow simulator, through a proxy that sees every request and can lose the answer to a
 * PATCH that landed. The step itself is a stand-in: these tests are about what reaches the ticket.
 */
const USER = 'changegate.integration';
const PASSWORD = 'write-back-test-password';

type Seen = ProxiedRequest & { body: Record<string, string> };
const proxyTo = (target: string, fault: (req: Seen) => ProxyFault) => ticketProxy(target, (req) => fault(req as Seen)) as Promise<Omit<Awaited<ReturnType<typeof ticketProxy>>, 'seen'> & { seen: Seen[] }>;

const isNotePatch = (r: Seen) => r.method === 'PATCH' && r.body.work_notes !== undefined;
const isJournalRead = (r: Seen) => r.method === 'GET' && r.path.includes('/sys_journal_field');

describe('write-back of a loop turn to a ServiceNow change (real Temporal, simulated ServiceNow)', () => {
  let connection: NativeConnection;
  let sim: ServiceNowSimulator;
  let simServer: { url: string; close(): Promise<void> };
  const grammars = new GrammarRegistry(connectorsFile());

  beforeAll(async () => {
    quietRuntime();
    connection = await NativeConnection.connect({ address: temporalAddress });
    sim = createServiceNowSimulator({ username: USER, password: PASSWORD });
    simServer = await sim.listen(0);
  });
  afterAll(async () => {
    await simServer.close();
    await connection.close();
  });

  /** The stand-in step: verified at once, as applyVerifyRecord answers after its evidence row is written. */
  const targets: Partial<ConnectorActivities> = {
    applyVerifyRecord: async () => ({ verified: true, refused: false, verifiedAt: new Date().toISOString(), detail: 'dropped', mismatches: [], created: false }),
  };

  /** A leaver change in the simulator, delivered to its workflow as the webhook would deliver the record. */
  async function runLeaver(
    fault: (req: Seen) => 'lose-answer' | 'refuse' | undefined,
    body: (ctx: { number: string; sysId: string; workflows: ChangeWorkflows; seen: Seen[] }) => Promise<void>,
    shape: (snap: TicketSnapshot) => TicketSnapshot = (s) => s,
  ): Promise<void> {
    const proxy = await proxyTo(simServer.url, fault);
    const client = new ServiceNowClient({ baseUrl: proxy.url, username: USER, password: PASSWORD, timeoutMs: 5_000 });
    const taskQueue = `cg-writeback-${randomUUID()}`;
    const workflows = await ChangeWorkflows.connect(temporalAddress, 'default', taskQueue);
    const worker = await Worker.create({
      connection,
      namespace: 'default',
      taskQueue,
      workflowBundle: { codePath: process.env.CG_TEST_BUNDLE as string },
      activities: { ...createTicketActivities({ writeBackFor: () => servicenowWriteBack(client) }), publishClosureView: async () => undefined, ...targets },
    });
    try {
      await worker.runUntil(async () => {
        const number = uniqueTicketNumber();
        const record = sim.createChange({ number, state: '-1', u_identity_actions: leaverActions(uniqueAccount('wb')) });
        const parsed = parseChangeRecord(record, grammars);
        if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
        const snapshot = shape({ ...parsed.value.ticket, eventId: randomUUID(), receivedAt: new Date().toISOString() });
        await workflows.deliver({ source: 'servicenow', key: number, recordId: record.sys_id as string }, snapshot);
        await body({ number, sysId: record.sys_id as string, workflows, seen: proxy.seen });
      });
    } finally {
      await workflows.close();
      await proxy.close();
    }
  }

  const verifiedGate = (sysId: string) => sim.getChange(sysId)?.[GATE_FIELD] === 'verified';

  it('the gate and both notes land in one PATCH, without a journal read, and the pending the new ticket already shows is not written again', async () => {
    await runLeaver(
      () => undefined,
      async ({ sysId, seen }) => {
        await waitFor('the verified gate', () => verifiedGate(sysId));
        const patches = seen.filter((r) => r.method === 'PATCH');
        expect(patches).toHaveLength(1);
        expect(patches[0]?.body).toMatchObject({ [GATE_FIELD]: 'verified', [GATE_DIGEST_FIELD]: sim.getChange(sysId)?.u_identity_cleanup_digest });
        expect(seen.filter(isJournalRead)).toEqual([]);
        const notes = sim.journal(sysId, 'work_notes').map((n) => n.value);
        expect(notes).toHaveLength(1);
        expect(notes[0]).toMatch(/^\[changegate leaver:[^\]]+:verified\] Verified: leaver .*\n\n\[changegate gate:\d+\] Identity cleanup verified: closure allowed\.$/);
      },
    );
  });

  it('a retried write-back whose first PATCH landed but whose answer was lost finds its notes by their markers and leaves each once', async () => {
    let lost = 0;
    await runLeaver(
      (r) => (isNotePatch(r) && lost++ === 0 ? 'lose-answer' : undefined),
      async ({ number, sysId, workflows, seen }) => {
        // The outbox's delivery answered `retry` to its first attempt (no answer) and `delivered` to its second.
        const outcomes = await waitFor('the write-back to be delivered on a retry', async () => {
          const events = (await workflows.client.workflow.getHandle(`change-servicenow-${number}`).fetchHistory()).events ?? [];
          const decode = (p: { payloads?: Array<{ data?: Uint8Array | null }> | null } | null | undefined) => JSON.parse(Buffer.from(p?.payloads?.[0]?.data ?? new Uint8Array()).toString('utf8')) as Record<string, unknown>;
          const results = events
            .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'deliverToTicket')
            .map((e) => {
              const done = events.find((c) => String(c.activityTaskCompletedEventAttributes?.scheduledEventId) === String(e.eventId));
              return { attempt: decode(e.activityTaskScheduledEventAttributes?.input).attempt, outcome: done ? decode(done.activityTaskCompletedEventAttributes?.result).outcome : undefined };
            });
          return results.some((r) => r.outcome === 'delivered') ? results : null;
        });
        expect(outcomes).toEqual([{ attempt: 1, outcome: 'retry' }, { attempt: 2, outcome: 'delivered' }]);
        expect(lost).toBe(1);
        // The first attempt wrote without looking; the retry looked, found both markers, and wrote nothing more.
        expect(seen.filter(isNotePatch)).toHaveLength(1);
        expect(seen.filter(isJournalRead)).toHaveLength(1);
        const notes = sim.journal(sysId, 'work_notes').map((n) => n.value).join('\n');
        expect(notes.match(/\[changegate leaver:[^\]]+:verified\]/g)).toHaveLength(1);
        expect(notes.match(/\[changegate gate:\d+\]/g)).toHaveLength(1);
        expect(verifiedGate(sysId)).toBe(true);
        expect((await workflows.status('servicenow', number))?.writeBackErrors).toEqual([]);
      },
    );
  });

  it('a delivery that does not show the gate gets pending written first, as before', async () => {
    await runLeaver(
      () => undefined,
      async ({ sysId, seen }) => {
        await waitFor('the verified gate', () => verifiedGate(sysId));
        expect(seen.filter((r) => r.method === 'PATCH').map((r) => r.body[GATE_FIELD])).toEqual(['pending', 'verified']);
      },
      ({ gateShown: _shown, ...snap }) => snap,
    );
  });

  it('a write-back refused for good blocks closure: the gate goes back to pending and the refusal is a reason', async () => {
    await runLeaver(
      (r) => (isNotePatch(r) ? 'refuse' : undefined),
      async ({ number, sysId, workflows, seen }) => {
        const state = await waitFor('the refusal to be recorded and the gate closed again', async () => {
          const s = await workflows.status('servicenow', number);
          return s && s.writeBackErrors.length > 0 && s.gate?.value === 'pending' ? s : null;
        });
        expect(state.steps[0]?.status).toBe('verified');
        expect(state.gateSet).toBe(false);
        expect(closureVerdict(state, closureRules)).toEqual({ allowed: false, reasons: [expect.stringMatching(/^evidence could not be written to the ticket: User Not Authorized/)] });
        expect(seen.filter((r) => r.method === 'PATCH').map((r) => r.body[GATE_FIELD])).toEqual(['verified', 'pending']);
        expect(sim.getChange(sysId)?.[GATE_FIELD]).toBe('pending');
        expect(sim.journal(sysId, 'work_notes')).toEqual([]);
      },
    );
  });
});

describe('the write-back activity and the closure view of its turn', () => {
  const ticket: TicketRef = { source: 'servicenow', key: 'CHG0000001', recordId: 'a'.repeat(32) };
  const view: ClosureView = { ticket: 'CHG0000001', allowed: true, reasons: [], ticketState: '-1', phase: 'implement', steps: [] };
  const publish = { ticketKey: 'servicenow:CHG0000001', version: 3, view };

  /** What reached the ticket and the projection, in order. */
  function wiring(opts: { ticketFails?: boolean; projectionFails?: boolean }) {
    const order: string[] = [];
    const adapter: TicketWriteBack = {
      postNote: async () => ({ posted: true }),
      setGate: async () => undefined,
      async writeTogether(_t, batch) {
        if (opts.ticketFails) throw new WriteBackError('ticket is gone', { kind: 'not_found' });
        order.push(`ticket:${batch.gate?.value ?? '-'}:${batch.notes.map((n) => n.marker).join(',')}`);
      },
    };
    const activities = createTicketActivities({
      writeBackFor: () => adapter,
      publishView: async (key, version) => {
        if (opts.projectionFails) throw new Error('closure_verdicts unavailable');
        order.push(`view:${key}@${version}`);
      },
    });
    return { order, activities };
  }

  it('publishes the view only once the ticket has the batch', async () => {
    const { order, activities } = wiring({});
    const out = await new MockActivityEnvironment().run(activities.writeBack, { ticket, gate: { value: 'verified' as const, digest: 'd' }, notes: [{ marker: 'm', text: 't' }], publish });
    expect(out).toEqual({ published: true });
    expect(order).toEqual(['ticket:verified:m', 'view:servicenow:CHG0000001@3']);
  });

  it('a projection that refuses leaves publishing to the workflow (published: false) and does not fail the write-back', async () => {
    const { order, activities } = wiring({ projectionFails: true });
    const out = await new MockActivityEnvironment().run(activities.writeBack, { ticket, notes: [{ marker: 'm', text: 't' }], publish });
    expect(out).toEqual({ published: false });
    expect(order).toEqual(['ticket:-:m']);
  });

  it('a ticket write that fails publishes nothing and fails as a final refusal', async () => {
    const { order, activities } = wiring({ ticketFails: true });
    const run = new MockActivityEnvironment().run(activities.writeBack, { ticket, gate: { value: 'verified' as const, digest: 'd' }, notes: [], publish });
    await expect(run).rejects.toMatchObject({ name: 'ApplicationFailure', type: 'TicketRefused', nonRetryable: true, message: 'ticket is gone' });
    expect(order).toEqual([]);
  });
});

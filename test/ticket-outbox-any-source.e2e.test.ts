import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { NativeConnection, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { createTicketActivities } from '../activities';
import type { TicketRef, TicketSnapshot } from '../src/change';
import { type GateWrite, type TicketUpdate, type TicketWriteBack, WriteBackError } from '../src/itsm/source';
import { ChangeWorkflows } from '../src/temporal/temporal-client';
import { quietRuntime, uniqueTicketNumber, waitFor } from './support/stack';
import { temporalAddress } from './support/test-env';

/**
 * The outbox speaks only TicketWriteBack, so it works for any source: here one defined in the test, without the
 * combined write ServiceNow has (notes one by one, then the gate, as a Jira source would), receiving an update of
 * another kind (an attachment) from a test-only action kind. Real Temporal; the source is the stand-in.
 */
const noop = () => undefined;

/** A source's write-back that keeps what reached "the ticket", in order, and can fail its first calls. */
function memorySource(failFirst: { kind: 'rate_limited' | 'transient'; times: number; retryAfterMs?: number }) {
  const landed: string[] = [];
  const retries: boolean[] = [];
  let failures = 0;
  const adapter: TicketWriteBack = {
    async postNote(_t: TicketRef, marker: string) {
      if (landed.includes(`note:${marker}`)) return { posted: false };
      landed.push(`note:${marker}`);
      return { posted: true };
    },
    async setGate(_t: TicketRef, gate: GateWrite) {
      landed.push(`gate:${gate.value}`);
    },
    async applyUpdate(_t: TicketRef, update: TicketUpdate, { retry }) {
      retries.push(retry);
      if (failures < failFirst.times) {
        failures += 1;
        throw new WriteBackError('Too Many Requests', { kind: failFirst.kind, ...(failFirst.retryAfterMs === undefined ? {} : { retryAfterMs: failFirst.retryAfterMs }) });
      }
      if (retry && landed.includes(`${update.kind}:${update.marker}`)) return;
      landed.push(`${update.kind}:${update.marker}`);
    },
  };
  return { adapter, landed, retries };
}

describe('ticket outbox for any ticket source (real Temporal, a source defined in the test)', () => {
  let connection: NativeConnection;
  let code: string;
  beforeAll(async () => {
    quietRuntime();
    connection = await NativeConnection.connect({ address: temporalAddress });
    ({ code } = await bundleWorkflowCode({
      workflowsPath: resolve(__dirname, 'kinds', 'outbox-workflows.ts'),
      logger: { trace: noop, debug: noop, info: noop, warn: noop, error: console.error, log: noop },
    }));
  }, 120_000);
  afterAll(async () => {
    await connection.close();
  });


  /** A worker on its own task queue whose ticket activities write through `adapter`, with a short back-off. */
  async function outboxWorker(adapter: TicketWriteBack) {
    const taskQueue = `cg-outbox-any-${randomUUID()}`;
    const workflows = await ChangeWorkflows.connect(temporalAddress, 'default', taskQueue);
    const worker = await Worker.create({
      connection,
      namespace: 'default',
      taskQueue,
      workflowBundle: { code },
      activities: { ...createTicketActivities({ writeBackFor: () => adapter, backoff: { initialMs: 10, maxMs: 50 } }), publishClosureView: async () => undefined },
    });
    return { workflows, worker };
  }
  it('an attachment recorded by a step is retried past a 429 and lands once, before the note and the gate, on a source without a combined write', async () => {
    const source = memorySource({ kind: 'rate_limited', times: 2, retryAfterMs: 50 });
    const { workflows, worker } = await outboxWorker(source.adapter);
    const key = uniqueTicketNumber();
    const ticket = { source: 'memory', key, recordId: `rec-${key}` };
    const snapshot: TicketSnapshot = {
      ...ticket, eventId: randomUUID(), version: 0, receivedAt: new Date().toISOString(), phase: 'implement', emergency: false, sourceState: 'Doing', actionsDigest: 'd1', gateShown: { value: 'pending', digest: '' },
      actions: [{ actionId: 'a1', kind: 'stamp', system: 'none', identity: { type: 'service_account', name: 'svc_stamped' } }],
    };
    try {
      await worker.runUntil(async () => {
        await workflows.deliver(ticket, snapshot);
        const state = await waitFor('the outbox delivered', async () => {
          const s = await workflows.status('memory', key);
          return s && s.gate?.value === 'verified' && s.outbox?.pending.length === 0 ? s : null;
        });
        expect(state.writeBackErrors).toEqual([]);
        expect(state.notesWritten).toEqual(expect.arrayContaining(['stamp:a1:attachment', 'stamp:a1:verified', 'gate:0']));
      });
    } finally {
      await workflows.close();
    }
    // Two answers of 429, then it landed: three attempts, the second and third looking for the marker first.
    expect(source.retries).toEqual([false, true, true]);
    expect(source.landed).toEqual(['attachment:stamp:a1:attachment', 'note:stamp:a1:verified', 'note:gate:0', 'gate:verified']);
  });

  it('a refusal of the batch being retried is recorded before the batch behind it is sent, so its verified gate is not shown without the refused update', async () => {
    const landed: string[] = [];
    let firstStep: 'transient' | 'refuse' = 'transient';
    const adapter: TicketWriteBack = {
      async postNote(_t: TicketRef, marker: string) {
        if (!landed.includes(`note:${marker}`)) landed.push(`note:${marker}`);
        return { posted: true };
      },
      async setGate(_t: TicketRef, gate: GateWrite) {
        landed.push(`gate:${gate.value}`);
      },
      async applyUpdate(_t: TicketRef, update: TicketUpdate) {
        if (update.marker.startsWith('stamp:a1')) {
          if (firstStep === 'transient') throw new WriteBackError('Service Unavailable', { kind: 'transient', retryAfterMs: 100 });
          throw new WriteBackError('User Not Authorized: ACL Exception', { kind: 'refused' });
        }
        landed.push(`${update.kind}:${update.marker}`);
      },
    };
    const { workflows, worker } = await outboxWorker(adapter);
    const key = uniqueTicketNumber();
    const ticket = { source: 'memory', key, recordId: `rec-${key}` };
    const action = (id: string) => ({ actionId: id, kind: 'stamp', system: 'none', identity: { type: 'service_account' as const, name: `svc_${id}` } });
    const snapshot = (version: number, ids: string[]): TicketSnapshot => ({
      ...ticket, eventId: randomUUID(), version, receivedAt: new Date().toISOString(), phase: 'implement', emergency: false, sourceState: 'Doing',
      actionsDigest: `d${version}`, gateShown: { value: 'pending', digest: '' }, actions: ids.map(action),
    });
    try {
      await worker.runUntil(async () => {
        await workflows.deliver(ticket, snapshot(0, ['a1']));
        await waitFor('the first batch retrying', async () => (await workflows.status('memory', key))?.outbox?.waiting);
        await workflows.deliver(ticket, snapshot(1, ['a1', 'a2']));
        await waitFor('a verified gate recorded behind it', async () => (await workflows.status('memory', key))?.outbox?.pending[1]?.gate?.value === 'verified');
        firstStep = 'refuse';
        const state = await waitFor('the refusal recorded and the rest delivered', async () => {
          const s = await workflows.status('memory', key);
          return s && s.writeBackErrors.length > 0 && s.outbox?.pending.length === 0 && s.gate ? s : null;
        });
        expect(state.writeBackErrors).toEqual(['User Not Authorized: ACL Exception']);
        expect(state.gate?.value).toBe('pending');
      });
    } finally {
      await workflows.close();
    }
    // The second step's attachment and note landed; no gate but `pending`, and no "closure allowed" note.
    expect(landed).toEqual(['attachment:stamp:a2:attachment', 'note:stamp:a2:verified', 'gate:pending']);
  });

  it('a source that cannot apply a kind of update refuses it for good, with the reason', async () => {
    const { adapter } = memorySource({ kind: 'transient', times: 0 });
    const withoutUpdates: TicketWriteBack = { postNote: adapter.postNote, setGate: adapter.setGate };
    const activities = createTicketActivities({ writeBackFor: () => withoutUpdates });
    const out = await new MockActivityEnvironment().run(activities.deliverToTicket, {
      ticket: { source: 'memory', key: 'K-1', recordId: 'r1' },
      attempt: 1,
      notes: [{ marker: 'n', text: 't' }],
      updates: [{ marker: 'u', kind: 'transition', body: { to: 'Done' } }],
      gate: { value: 'verified' as const, digest: 'd' },
    });
    expect(out).toEqual({ outcome: 'refused', reason: "ticket source 'memory' cannot apply a 'transition' update" });
  });

  it('a transient failure answers retry with the back-off, and a 429 with the delay the source asked for', async () => {
    const transient = memorySource({ kind: 'transient', times: 1 });
    const env = new MockActivityEnvironment();
    const input = { ticket: { source: 'memory', key: 'K-2', recordId: 'r2' }, notes: [], updates: [{ marker: 'u', kind: 'attachment', body: {} }] };
    const backoff = { initialMs: 1_000, maxMs: 60_000 };
    const first = await env.run(createTicketActivities({ writeBackFor: () => transient.adapter, backoff }).deliverToTicket, { ...input, attempt: 3 });
    expect(first).toMatchObject({ outcome: 'retry', reason: 'Too Many Requests' });
    // The third failed attempt: a ceiling of 4 s, drawn from [2 s, 4 s].
    expect((first as { retryInMs: number }).retryInMs).toBeGreaterThanOrEqual(2_000);
    expect((first as { retryInMs: number }).retryInMs).toBeLessThanOrEqual(4_000);
    const limited = memorySource({ kind: 'rate_limited', times: 1, retryAfterMs: 30_000 });
    const second = await env.run(createTicketActivities({ writeBackFor: () => limited.adapter, backoff }).deliverToTicket, { ...input, attempt: 1 });
    expect((second as { retryInMs: number }).retryInMs).toBeGreaterThanOrEqual(30_000);
    expect((second as { retryInMs: number }).retryInMs).toBeLessThanOrEqual(31_000);
  });
});

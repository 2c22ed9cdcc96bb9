import { randomUUID } from 'node:crypto';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createClosureActivities, createConnectorActivities, createTicketActivities, createTicketLifecycleActivities } from '../activities';
import type { ChangeState, TicketRef, TicketSnapshot } from '../src/change';
import { ConnectorRegistry } from '../src/connectors/registry';
import type { GateWrite, TicketWriteBack } from '../src/itsm/source';
import { identityActionsDigest } from '../src/itsm/servicenow/servicenow-gate';
import type { LegacyChangeWorkflowInput, LegacySnapshot } from '../workflows/change-types';
import { type Stack, connectorsFile, createAccount, startStack, uniqueAccount, uniqueTicketNumber, waitFor } from './support/stack';
import { temporalAddress } from './support/test-env';

/**
 * A run started before tickets were normalised — ServiceNow-shaped input and snapshot — must keep working after the
 * upgrade, including when the next delivery arrives in the new shape. Real Temporal, the real workflow bundle, real
 * MariaDB and connector activities; the ticket write-backs land in an in-memory adapter so they can be read back.
 */
describe('runs and write-backs started before tickets were normalised (ServiceNow-shaped)', () => {
  let stack: Stack;
  let connection: NativeConnection;
  let registry: ConnectorRegistry;
  let worker: Worker;
  let running: Promise<void>;
  const written: Array<{ op: 'note'; ticket: TicketRef; marker: string } | { op: 'gate'; ticket: TicketRef; gate: GateWrite }> = [];
  const memory: TicketWriteBack = {
    async postNote(ticket, marker) {
      written.push({ op: 'note', ticket, marker });
      return { posted: true };
    },
    async setGate(ticket, gate) {
      written.push({ op: 'gate', ticket, gate });
    },
  };

  beforeAll(async () => {
    stack = await startStack({ inProcessWorker: false });
    registry = new ConnectorRegistry(connectorsFile());
    connection = await NativeConnection.connect({ address: temporalAddress });
    worker = await Worker.create({
      connection,
      namespace: 'default',
      taskQueue: stack.taskQueue,
      workflowBundle: { codePath: process.env.CG_TEST_BUNDLE as string },
      activities: {
        ...createConnectorActivities({ registry, evidence: stack.evidence, actor: 'legacy-shapes-test' }),
        ...createTicketActivities({ writeBackFor: () => memory }),
        // The worker's lifecycle activities too (the in-memory adapter has no attachments: the bundle is skipped).
        ...createTicketLifecycleActivities({ writeBackFor: () => memory, evidence: stack.evidence }),
        ...createClosureActivities({ verdicts: stack.verdicts }),
      },
    });
    running = worker.run();
  });
  afterAll(async () => {
    worker.shutdown();
    await running;
    await registry.close();
    await connection.close();
    await stack.stop();
  });

  it('reads the old snapshot as phase authorization at version 0, revokes the leaver, then completes on a new-shape Closed delivery with write-backs to the same sys_id', async () => {
    const account = uniqueAccount('legacy');
    await createAccount(stack.admin, account);
    const number = uniqueTicketNumber();
    const sysId = randomUUID().replace(/-/g, '');
    const text = JSON.stringify([{ kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' } }]);
    const actions: LegacySnapshot['actions'] = [{ actionId: 'legacy-1', kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name: account, host: '%' } }];
    const oldInput: LegacyChangeWorkflowInput = { source: 'servicenow', ticketNumber: number, sysId };
    const oldSnapshot: LegacySnapshot = {
      eventId: randomUUID(), modCount: 0, receivedAt: new Date().toISOString(), state: '-3', approval: 'requested', type: 'emergency', actions, actionsDigest: identityActionsDigest(text),
    };
    const handle = await stack.workflows.client.workflow.signalWithStart('changeWorkflow', {
      workflowId: `change-servicenow-${number}`, taskQueue: stack.taskQueue, args: [oldInput], signal: 'ticketUpdated', signalArgs: [oldSnapshot],
    });

    const seen = await waitFor('the old snapshot read as a normalised ticket', async () => {
      const s = await stack.workflows.status('servicenow', number);
      return s && s.version === 0 ? s : null;
    });
    expect(seen).toMatchObject({ source: 'servicenow', key: number, recordId: sysId, phase: 'authorization', emergency: true, sourceState: '-3' });
    await waitFor('account dropped', async () => !(await stack.accountExists(account)));
    await waitFor('verified gate written', () => written.some((w) => w.op === 'gate' && w.gate.value === 'verified'));

    const closed: TicketSnapshot = {
      source: 'servicenow', key: number, recordId: sysId, eventId: randomUUID(), receivedAt: new Date().toISOString(),
      phase: 'closed', emergency: true, version: 1, sourceState: '3', actions, actionsDigest: identityActionsDigest(text),
    };
    await stack.workflows.deliver({ source: 'servicenow', key: number, recordId: sysId }, closed);
    const final: ChangeState = await handle.result();
    expect(final).toMatchObject({ phase: 'closed', version: 1, sourceState: '3', deliveries: 2, writeBackErrors: [] });
    expect(final.steps).toEqual([expect.objectContaining({ stepId: 'leaver:legacy-1', status: 'verified' })]);
    expect(written.length).toBeGreaterThan(0);
    expect(new Set(written.map((w) => `${w.ticket.source}/${w.ticket.key}/${w.ticket.recordId}`))).toEqual(new Set([`servicenow/${number}/${sysId}`]));
    expect(written).toContainEqual({ op: 'note', ticket: { source: 'servicenow', key: number, recordId: sysId }, marker: 'leaver:legacy-1:verified' });
  });

  it('a write-back scheduled before tickets were normalised (a bare sys_id) reaches the ServiceNow adapter with that sys_id', async () => {
    const asked: string[] = [];
    const activities = createTicketActivities({
      writeBackFor: (source) => {
        asked.push(source);
        return memory;
      },
    });
    const sysId = randomUUID().replace(/-/g, '');
    const before = written.length;
    await activities.postWorkNote({ sysId, marker: 'gate:3', text: 'Identity cleanup verified: closure allowed.' });
    await activities.setClosureGate({ sysId, value: 'verified', digest: 'd'.repeat(64) });
    await activities.setClosureGate({ sysId, value: '' });
    expect(asked).toEqual(['servicenow', 'servicenow', 'servicenow']);
    const ticket = { source: 'servicenow', key: '', recordId: sysId };
    expect(written.slice(before)).toEqual([
      { op: 'note', ticket, marker: 'gate:3' },
      { op: 'gate', ticket, gate: { value: 'verified', digest: 'd'.repeat(64) } },
      { op: 'gate', ticket, gate: { value: '' } },
    ]);
  });
});

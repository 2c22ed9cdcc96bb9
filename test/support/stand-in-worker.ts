import { randomUUID } from 'node:crypto';
import { type NativeConnection, Worker } from '@temporalio/worker';
import type { ConnectorActivities, TicketActivities } from '../../activities';
import type { ClosureView, TicketSnapshot } from '../../src/change';
import { ChangeWorkflows } from '../../src/temporal/temporal-client';
import { uniqueTicketNumber } from './stack';

/** What the workflow asked the ticket for, and the closure views it published: the verdict as closure-check sees it. */
export interface Seen {
  gates: string[];
  views: ClosureView[];
}

/**
 * The real workflow bundle on a real Temporal server, with the target activities replaced by the seam a test breaks
 * on purpose (an evidence database that stays down, a worker that is lost); the ticket writes are recorded, not sent.
 * The connector and evidence activities themselves are covered against the real systems elsewhere.
 */
export async function runWithStandIns(
  temporal: { connection: NativeConnection; address: string },
  targets: Partial<ConnectorActivities>,
  body: (number: string, seen: Seen, workflows: ChangeWorkflows) => Promise<void>,
): Promise<void> {
  const taskQueue = `cg-standins-${randomUUID()}`;
  const workflows = await ChangeWorkflows.connect(temporal.address, 'default', taskQueue);
  const seen: Seen = { gates: [], views: [] };
  const tickets: TicketActivities = {
    postWorkNote: async () => ({ posted: true }),
    setClosureGate: async () => undefined,
    writeBack: async () => ({ published: false }),
    deliverToTicket: async (input) => {
      if (input.gate) seen.gates.push(input.gate.value);
      if (input.publish) seen.views.push(input.publish.view);
      return { outcome: 'delivered', published: input.publish !== undefined };
    },
  };
  const worker = await Worker.create({
    connection: temporal.connection,
    namespace: 'default',
    taskQueue,
    workflowBundle: { codePath: process.env.CG_TEST_BUNDLE as string },
    // The closure view lands in the database the real activity writes; these paths are about the steps.
    activities: {
      ...tickets,
      publishClosureView: async ({ view }: { view: ClosureView }) => {
        seen.views.push(view);
      },
      ...targets,
    },
  });
  try {
    await worker.runUntil(body(uniqueTicketNumber(), seen, workflows));
  } finally {
    await workflows.close();
  }
}

/** A leaver of one MariaDB account, authorized: its step starts at once. */
export function leaverSnapshot(key: string, recordId: string): TicketSnapshot {
  return {
    source: 'servicenow', key, recordId, eventId: randomUUID(), version: 0, receivedAt: new Date().toISOString(), phase: 'implement', emergency: false, sourceState: '-1',
    // A gate is written only for a known identity-actions text.
    actionsDigest: 'a'.repeat(64),
    actions: [{ actionId: 'a1', kind: 'leaver', system: 'mysql-local', identity: { type: 'service_account', name: 'svc_gone', host: '%' } }],
  };
}

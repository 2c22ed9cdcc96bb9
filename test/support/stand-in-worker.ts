import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { type NativeConnection, Worker } from '@temporalio/worker';
import type { CertificationActivities, ConnectorActivities, TicketActivities } from '../../activities';
import { type ClosureView, type TicketSnapshot, workflowIdFor } from '../../src/change';
import { ChangeWorkflows } from '../../src/temporal/temporal-client';
import { TARGET_ATTEMPTS } from '../../workflows/activity-proxies';
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
  targets: Partial<ConnectorActivities & Pick<CertificationActivities, 'certifyStep'>>,
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
  const number = uniqueTicketNumber();
  try {
    await worker.runUntil(body(number, seen, workflows));
  } finally {
    // The ticket's workflow outlives the test, and its next workflow task would wait for a worker that is gone: on
    // the time-skipping server such a task holds the clock for every test after it.
    await workflows.client.workflow.getHandle(workflowIdFor('servicenow', number)).terminate('the test is over').catch(() => undefined); // already over, or never started
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

/** A rotation of one MariaDB account's password into the secrets store, authorized: its step starts at once. */
export function rotationSnapshot(key: string, recordId: string): TicketSnapshot {
  const identity = { type: 'service_account' as const, name: 'svc_app', host: '%' };
  return { ...leaverSnapshot(key, recordId), actions: [{ actionId: 'a1', kind: 'rotate', system: 'mysql-local', identity, deliverTo: { system: 'vault-local', path: 'apps/svc_app/db' } }] };
}

/**
 * Workers lost in the middle of an activity: `lose` heartbeats the progress the attempt had recorded, then neither
 * heartbeats nor answers, so the attempt ends on the heartbeat timeout. `release` at the end of the test lets the hung
 * calls go; what they say then reaches nobody.
 */
export function lostWorkers(): { lose(progress?: unknown): Promise<never>; release(): void } {
  let release!: () => void;
  const gone = new Promise<void>((resolve) => {
    release = resolve;
  });
  return {
    async lose(progress) {
      if (progress !== undefined) Context.current().heartbeat(progress);
      await gone;
      throw new Error('this worker was lost long ago');
    },
    release,
  };
}

export { TARGET_ATTEMPTS };

/**
 * An activity whose last attempt loses its worker, as the workflow sees it, at the cost of one lost worker: the
 * time-skipping server holds its clock while an attempt runs, so every lost worker costs the real heartbeat timeout
 * (15 s), and a whole activity lost on its 12 attempts costs three minutes. The earlier attempts fail at once on a
 * fault that may pass (the target unreachable), which Temporal retries as it retries a lost worker; the workflow reads
 * only the last attempt's failure.
 */
export async function lostOnLastAttempt(workers: { lose(progress?: unknown): Promise<never> }, progress?: unknown): Promise<never> {
  // The test server does not hand the activity its retry policy (`info.retryPolicy` is empty there).
  if (Context.current().info.attempt < TARGET_ATTEMPTS) throw new Error('connect ECONNREFUSED (a stand-in target that cannot be reached)');
  return workers.lose(progress);
}

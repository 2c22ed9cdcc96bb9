import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { temporal } from '@temporalio/proto';
import type { ApplyVerifyRecordResult, RotateResult } from '../activities/connector-activities';
import { type ChangeState, workflowIdFor } from '../src/change';
import type { ChangeWorkflows } from '../src/temporal/temporal-client';
import { stepsScheduledTwice } from './chaos/steps-twice';
import { waitFor } from './support/stack';
import { TARGET_ATTEMPTS, leaverSnapshot, lostOnLastAttempt, lostWorkers, rotationSnapshot, runWithStandIns } from './support/stand-in-worker';
import { startTimeSkippingServer } from './support/time-skipping';

/**
 * A worker lost in the middle of a step (killed, or its host gone) is not the target failing. The fault suite found
 * steps ending failed "activity Heartbeat timeout" after their worker was lost on every attempt the target proxy
 * allows (12), blocking tickets whose targets never refused. Here the step's activity is taken by a worker that
 * never heartbeats and never answers, more times than the proxy allows attempts, on Temporal's time-skipping server
 * (each loss costs the 15 s heartbeat timeout and the back-off, minutes of workflow time in all) with the real
 * workflow bundle; the activity is a stand-in because a lost worker is the seam being broken. The other tests lose
 * only the last attempt of each scheduling (`lostOnLastAttempt`, which says why), the one the workflow reads.
 */
describe('a step whose worker is lost on more attempts than its retry policy allows', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await startTimeSkippingServer();
  }, 60_000);
  afterAll(async () => {
    await env?.teardown();
  });

  /** The ticket's state once its one step is verified or failed. */
  async function stepEnds(workflows: ChangeWorkflows, number: string, timeoutMs: number): Promise<ChangeState> {
    return waitFor(
      'the step to end',
      async () => {
        // Workflow time moves only when asked: a minute per look covers a heartbeat timeout and a back-off.
        await env.sleep('1 minute');
        const s = await workflows.status('servicenow', number);
        return s?.steps[0]?.status === 'verified' || s?.steps[0]?.status === 'failed' ? s : null;
      },
      timeoutMs,
    );
  }

  it('is scheduled again, from the lost attempt\'s recorded progress, until a worker that lives does it: verified, no failure recorded, closure allowed', async () => {
    /** More losses in a row than the target proxy allows attempts. */
    const LOSSES = TARGET_ATTEMPTS + 1;
    let calls = 0;
    const lost = lostWorkers();
    const failuresRecorded: string[] = [];
    /** What each call was given as the lost activity's progress (`earlierProgress`), by call. */
    const carried: unknown[] = [];
    const done: ApplyVerifyRecordResult = { verified: true, refused: false, detail: 'dropped svc_gone@%', mismatches: [], created: false, verifiedAt: new Date().toISOString() };

    await runWithStandIns(
      { connection: env.nativeConnection, address: env.address },
      {
        applyVerifyRecord: async (input) => {
          calls += 1;
          carried.push(input.earlierProgress);
          if (calls > LOSSES) return done;
          // What it had recorded before acting (a move records its plan so), then a lost worker.
          return lost.lose({ progressOfCall: calls });
        },
        recordFailure: async (input) => {
          failuresRecorded.push(input.error);
          return { evidenceHash: 'h' };
        },
      },
      async (number, seen, workflows) => {
        try {
          await workflows.deliver({ source: 'servicenow', key: number, recordId: 'c'.repeat(32) }, leaverSnapshot(number, 'c'.repeat(32)));
          const state = await stepEnds(workflows, number, 300_000);
          expect(state.steps[0]).toMatchObject({ status: 'verified', detail: 'dropped svc_gone@%' });
          expect(calls).toBe(LOSSES + 1);
          expect(failuresRecorded).toEqual([]);
          // The activity scheduled after the twelfth loss starts from the last heartbeat of the one it replaces.
          expect(carried.slice(0, TARGET_ATTEMPTS)).toEqual(Array(TARGET_ATTEMPTS).fill(undefined));
          expect(carried[TARGET_ATTEMPTS]).toEqual({ progressOfCall: TARGET_ATTEMPTS });
          // Two schedulings of the step's one activity, the second continuing the lost first: the fault suite's
          // count of steps acted on twice (test/chaos/steps-twice.ts) does not take it for a second action.
          const history = await workflows.client.workflow.getHandle(workflowIdFor('servicenow', number)).fetchHistory();
          expect(scheduled(history, 'applyVerifyRecord')).toBe(2);
          expect(stepsScheduledTwice(history)).toEqual([]);
          await waitFor('the verdict allowing closure', () => seen.views.find((v) => v.allowed));
          await waitFor('the gate written verified', () => seen.gates.includes('verified'));
        } finally {
          lost.release();
        }
      },
    );
  }, 400_000);

  it('fails after ten rounds that each ended on a lost worker, naming the loss: its failure recorded, closure refused, nothing scheduled after', async () => {
    /** LOST_WORKER_ROUNDS in workflows/kinds/step-runner.ts. */
    const ROUNDS = 10;
    const lost = lostWorkers();
    const failuresRecorded: string[] = [];
    await runWithStandIns(
      { connection: env.nativeConnection, address: env.address },
      {
        applyVerifyRecord: () => lostOnLastAttempt(lost),
        recordFailure: async (input) => {
          failuresRecorded.push(input.error);
          return { evidenceHash: 'h' };
        },
      },
      async (number, seen, workflows) => {
        try {
          await workflows.deliver({ source: 'servicenow', key: number, recordId: 'd'.repeat(32) }, leaverSnapshot(number, 'd'.repeat(32)));
          const state = await stepEnds(workflows, number, 400_000);
          const detail = 'could not verify and record: its worker was lost (heartbeat timeout)';
          expect(state.steps[0]).toMatchObject({ status: 'failed', detail });
          expect(failuresRecorded).toEqual([detail]);
          await waitFor('the verdict refusing closure for the failed step', () => seen.views.find((v) => !v.allowed && v.reasons.some((r) => r.endsWith(`failed: ${detail}`))));
          const handle = workflows.client.workflow.getHandle(workflowIdFor('servicenow', number));
          expect(scheduled(await handle.fetchHistory(), 'applyVerifyRecord')).toBe(ROUNDS);
          // The workflow stays open for the ticket, but nothing runs the step any more.
          const pending = (await handle.describe()).raw.pendingActivities ?? [];
          expect(pending.map((a) => a.activityType?.name)).not.toContain('applyVerifyRecord');
          expect(seen.gates).not.toContain('verified');
        } finally {
          lost.release();
        }
      },
    );
  }, 500_000);

  it('a rotation whose rotateAndDeliver lost its worker is scheduled again and delivers one rotation: verified, closure allowed', async () => {
    const lost = lostWorkers();
    let delivered = 0;
    let firstActivity: string | undefined;
    const failuresRecorded: string[] = [];
    const rotated: RotateResult = { verified: true, detail: 'password set; delivered to vault-local:apps/svc_app/db v1 (fp-1)', fingerprint: 'fp-1', version: 1, evidenceHash: 'h', verifiedAt: new Date().toISOString() };
    await runWithStandIns(
      { connection: env.nativeConnection, address: env.address },
      {
        // The first activity loses its worker on its last attempt; the one scheduled after it delivers.
        rotateAndDeliver: async () => {
          firstActivity ??= Context.current().info.activityId;
          if (Context.current().info.activityId === firstActivity) return lostOnLastAttempt(lost);
          delivered += 1;
          return rotated;
        },
        recordFailure: async (input) => {
          failuresRecorded.push(input.error);
          return { evidenceHash: 'h' };
        },
        certifyStep: async () => null,
      },
      async (number, seen, workflows) => {
        try {
          await workflows.deliver({ source: 'servicenow', key: number, recordId: 'e'.repeat(32) }, rotationSnapshot(number, 'e'.repeat(32)));
          const state = await stepEnds(workflows, number, 120_000);
          expect(state.steps[0]).toMatchObject({ status: 'verified', detail: rotated.detail, rotation: { fingerprint: 'fp-1', version: 1 } });
          expect(delivered).toBe(1);
          expect(failuresRecorded).toEqual([]);
          const history = await workflows.client.workflow.getHandle(workflowIdFor('servicenow', number)).fetchHistory();
          expect(scheduled(history, 'rotateAndDeliver')).toBe(2);
          await waitFor('the verdict allowing closure', () => seen.views.find((v) => v.allowed));
          await waitFor('the gate written verified', () => seen.gates.includes('verified'));
        } finally {
          lost.release();
        }
      },
    );
  }, 200_000);

  it('a refused step whose recordFailure lost its worker is recorded by the one scheduled after it: one failure row, the detail without a recording error', async () => {
    const lost = lostWorkers();
    let firstActivity: string | undefined;
    const failuresRecorded: string[] = [];
    const refusal = "mysql-local: the account 'svc_gone'@'%' owns running events and cannot be dropped";
    await runWithStandIns(
      { connection: env.nativeConnection, address: env.address },
      {
        applyVerifyRecord: async () => {
          throw ApplicationFailure.nonRetryable(refusal, 'TargetRefused');
        },
        recordFailure: async (input) => {
          firstActivity ??= Context.current().info.activityId;
          if (Context.current().info.activityId === firstActivity) return lostOnLastAttempt(lost);
          failuresRecorded.push(input.error);
          return { evidenceHash: 'h' };
        },
      },
      async (number, seen, workflows) => {
        try {
          await workflows.deliver({ source: 'servicenow', key: number, recordId: 'f'.repeat(32) }, leaverSnapshot(number, 'f'.repeat(32)));
          const state = await stepEnds(workflows, number, 120_000);
          const detail = `could not verify and record: ${refusal}`;
          expect(state.steps[0]).toMatchObject({ status: 'failed', detail });
          expect(failuresRecorded).toEqual([detail]);
          const history = await workflows.client.workflow.getHandle(workflowIdFor('servicenow', number)).fetchHistory();
          expect(scheduled(history, 'recordFailure')).toBe(2);
          await waitFor('the verdict refusing closure for the failed step', () => seen.views.find((v) => !v.allowed && v.reasons.some((r) => r.endsWith(`failed: ${detail}`))));
        } finally {
          lost.release();
        }
      },
    );
  }, 200_000);
});

/** How many times the workflow scheduled the activity (a retried attempt is not a new scheduling). */
function scheduled(history: temporal.api.history.v1.IHistory, activity: string): number {
  return history.events?.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === activity).length ?? 0;
}

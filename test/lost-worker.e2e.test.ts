import { Context } from '@temporalio/activity';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { ApplyVerifyRecordResult } from '../activities/connector-activities';
import { workflowIdFor } from '../src/change';
import { stepsScheduledTwice } from './chaos/steps-twice';
import { waitFor } from './support/stack';
import { leaverSnapshot, runWithStandIns } from './support/stand-in-worker';
import { startTimeSkippingServer } from './support/time-skipping';

/**
 * A worker lost in the middle of a step (killed, or its host gone) is not the target failing. The fault suite found
 * steps ending failed "activity Heartbeat timeout" after their worker was lost on every attempt the target proxy
 * allows (12), blocking tickets whose targets never refused. Here the step's activity is taken by a worker that
 * never heartbeats and never answers, more times than the proxy allows attempts, on Temporal's time-skipping server
 * (each loss costs the 15 s heartbeat timeout and the back-off, minutes of workflow time in all) with the real
 * workflow bundle; the activity is a stand-in because a lost worker is the seam being broken.
 */
describe('a step whose worker is lost on more attempts than its retry policy allows', () => {
  let env: TestWorkflowEnvironment;
  beforeAll(async () => {
    env = await startTimeSkippingServer();
  }, 60_000);
  afterAll(async () => {
    await env?.teardown();
  });

  it('is scheduled again, from the lost attempt\'s recorded progress, until a worker that lives does it: verified, no failure recorded, closure allowed', async () => {
    /** More losses in a row than `maximumAttempts` of the target proxy (workflows/activity-proxies.ts). */
    const LOSSES = 13;
    let calls = 0;
    let releaseLost!: () => void;
    const lostWorkersGone = new Promise<void>((resolve) => {
      releaseLost = resolve;
    });
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
          // What it had recorded before acting (a move records its plan so), then a lost worker: no more heartbeats
          // and no answer; what it says once the test ends reaches nobody.
          Context.current().heartbeat({ progressOfCall: calls });
          await lostWorkersGone;
          throw new Error('this worker was lost long ago');
        },
        recordFailure: async (input) => {
          failuresRecorded.push(input.error);
          return { evidenceHash: 'h' };
        },
      },
      async (number, seen, workflows) => {
        try {
          await workflows.deliver({ source: 'servicenow', key: number, recordId: 'c'.repeat(32) }, leaverSnapshot(number, 'c'.repeat(32)));
          const state = await waitFor(
            'the step to end',
            async () => {
              // Workflow time moves only when asked: a minute per look covers a heartbeat timeout and a back-off.
              await env.sleep('1 minute');
              const s = await workflows.status('servicenow', number);
              return s?.steps[0]?.status === 'verified' || s?.steps[0]?.status === 'failed' ? s : null;
            },
            300_000,
          );
          expect(state.steps[0]).toMatchObject({ status: 'verified', detail: 'dropped svc_gone@%' });
          expect(calls).toBe(LOSSES + 1);
          expect(failuresRecorded).toEqual([]);
          // The activity scheduled after the twelfth loss starts from the last heartbeat of the one it replaces.
          expect(carried.slice(0, 12)).toEqual(Array(12).fill(undefined));
          expect(carried[12]).toEqual({ progressOfCall: 12 });
          // Two schedulings of the step's one activity, the second continuing the lost first: the fault suite's
          // count of steps acted on twice (test/chaos/steps-twice.ts) does not take it for a second action.
          const history = await workflows.client.workflow.getHandle(workflowIdFor('servicenow', number)).fetchHistory();
          expect(history.events?.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'applyVerifyRecord')).toHaveLength(2);
          expect(stepsScheduledTwice(history)).toEqual([]);
          await waitFor('the verdict allowing closure', () => seen.views.find((v) => v.allowed));
          await waitFor('the gate written verified', () => seen.gates.includes('verified'));
        } finally {
          releaseLost();
        }
      },
    );
  }, 400_000);
});

import { MockActivityEnvironment } from '@temporalio/testing';
import { keepAlive, progressSoFar, recordProgress } from '../activities/keep-alive';

/**
 * What a step activity starts from: the progress its earlier attempt recorded with its heartbeat (Temporal hands it
 * back in `info.heartbeatDetails`), or, for an activity the workflow scheduled again after the one before lost its
 * worker on every attempt, the lost attempt's last heartbeat passed in the input as `earlierProgress`.
 */
describe('keepAlive: the progress an activity starts from', () => {
  const activities = keepAlive({
    step: async (_input: { earlierProgress?: unknown }) => progressSoFar(),
    stepThatRecords: async (_input: { earlierProgress?: unknown }) => {
      recordProgress({ move: 'planned' });
      return progressSoFar();
    },
  });

  it('a rescheduled activity with no attempt of its own before starts from the lost activity\'s progress', async () => {
    expect(await new MockActivityEnvironment().run(activities.step, { earlierProgress: { move: 'lost plan' } })).toEqual({ move: 'lost plan' });
  });

  it('a retried attempt starts from its own earlier attempt\'s heartbeat, which is newer than the lost activity\'s', async () => {
    const env = new MockActivityEnvironment({ heartbeatDetails: { move: 'attempt 1 plan' } });
    expect(await env.run(activities.step, { earlierProgress: { move: 'lost plan' } })).toEqual({ move: 'attempt 1 plan' });
  });

  it('nothing recorded anywhere: no progress; and what the activity records replaces what it started from', async () => {
    expect(await new MockActivityEnvironment().run(activities.step, {})).toBeUndefined();
    expect(await new MockActivityEnvironment().run(activities.stepThatRecords, { earlierProgress: { move: 'lost plan' } })).toEqual({ move: 'planned' });
  });
});

import { ScheduleOverlapPolicy } from '@temporalio/client';
import { type Stack, waitFor } from './stack';

/** Runs the stack's discovery schedule now (instead of waiting its interval) and waits for that run to finish; its workflow id. */
export async function runScheduledDiscovery(stack: Stack): Promise<string> {
  const handle = stack.workflows.client.schedule.getHandle(stack.discoveryScheduleId);
  const earlier = new Set((await handle.describe()).info.recentActions.map((a) => a.action.workflow.firstExecutionRunId));
  await handle.trigger(ScheduleOverlapPolicy.ALLOW_ALL);
  const run = await waitFor('the scheduled discovery run', async () =>
    (await handle.describe()).info.recentActions.map((a) => a.action.workflow).find((w) => !earlier.has(w.firstExecutionRunId)),
  );
  await stack.workflows.client.workflow.getHandle(run.workflowId, run.firstExecutionRunId).result();
  return run.workflowId;
}

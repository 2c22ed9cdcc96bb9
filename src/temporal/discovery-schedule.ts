import type { Duration } from '@temporalio/common';
import { type Client, ScheduleAlreadyRunning, type ScheduleHandle, ScheduleOverlapPolicy } from '@temporalio/client';

/** The one discovery schedule per namespace (tests give each stack its own id). */
export const DISCOVERY_SCHEDULE_ID = 'changegate-discovery';

export interface DiscoveryScheduleOptions {
  scheduleId?: string;
  taskQueue: string;
  /** Milliseconds between runs (CHANGEGATE_DISCOVERY_INTERVAL). */
  intervalMs: number;
}

/**
 * Creates the discovery schedule, or brings an existing one to this interval and task queue: safe to call at every
 * start of every process. Each run is `discoveryWorkflow`, a scan of every configured system that reconciles the
 * inventory. A run still going when the next is due is not doubled, and runs missed while the cluster was down are
 * not replayed one after another: the next one finds the same drift.
 */
export async function ensureDiscoverySchedule(client: Client, opts: DiscoveryScheduleOptions): Promise<ScheduleHandle> {
  const scheduleId = opts.scheduleId ?? DISCOVERY_SCHEDULE_ID;
  const spec = { intervals: [{ every: opts.intervalMs }] };
  const action = {
    type: 'startWorkflow' as const,
    workflowType: 'discoveryWorkflow',
    workflowId: scheduleId,
    taskQueue: opts.taskQueue,
    args: [],
    workflowExecutionTimeout: '30 minutes' as Duration,
  };
  const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' as Duration };
  try {
    return await client.schedule.create({ scheduleId, spec, action, policies });
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  const handle = client.schedule.getHandle(scheduleId);
  await handle.update((previous) => ({ ...previous, spec, action, policies }));
  return handle;
}

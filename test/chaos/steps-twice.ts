import type { History } from '@temporalio/common/lib/proto-utils';
import { temporal } from '@temporalio/proto';

/**
 * The step operations a change workflow's history scheduled more than once, each as "<stepId> <operation> x<n>". A
 * step acted on twice is a second applyVerifyRecord scheduled for the same step and the same operation (a mover's
 * removal and its additions are two operations, both `move`, with different phases); a retried attempt of one
 * activity is the same scheduling, and the evidence store's unique (ticket, step, outcome) could never show it. So is
 * an activity scheduled again because the one before lost its worker on every attempt (a heartbeat timeout ended
 * it: workflows/kinds/step-runner.ts `despiteLostWorkers`): it continues that activity, handed its progress.
 */
export function stepsScheduledTwice(history: History): string[] {
  const seen = new Map<string, number>();
  /** Scheduled event id → the step operation it scheduled. */
  const scheduled = new Map<string, string>();
  /** Operations whose last scheduling ended with its worker lost: their next scheduling continues it. */
  const lost = new Set<string>();
  for (const e of history.events ?? []) {
    const timedOut = e.activityTaskTimedOutEventAttributes;
    if (timedOut) {
      const phase = scheduled.get(String(timedOut.scheduledEventId));
      if (phase && Number(timedOut.failure?.timeoutFailureInfo?.timeoutType) === temporal.api.enums.v1.TimeoutType.TIMEOUT_TYPE_HEARTBEAT) lost.add(phase);
      continue;
    }
    const a = e.activityTaskScheduledEventAttributes;
    if (a?.activityType?.name !== 'applyVerifyRecord') continue;
    const input = JSON.parse(Buffer.from(a.input?.payloads?.[0]?.data ?? new Uint8Array()).toString('utf8')) as { stepId: string; operation: unknown };
    const phase = `${input.stepId} ${JSON.stringify(input.operation)}`;
    scheduled.set(String(e.eventId), phase);
    if (lost.delete(phase)) continue;
    seen.set(phase, (seen.get(phase) ?? 0) + 1);
  }
  return [...seen].filter(([, n]) => n > 1).map(([phase, n]) => `${phase} x${n}`);
}

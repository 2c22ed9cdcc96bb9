import type { History } from '@temporalio/common/lib/proto-utils';

/**
 * The step operations a change workflow's history scheduled more than once, each as "<stepId> <operation> x<n>". A
 * step acted on twice is a second applyVerifyRecord scheduled for the same step and the same operation (a mover's
 * removal and its additions are two operations, both `move`, with different phases); a retried attempt of one
 * activity is the same scheduling, and the evidence store's unique (ticket, step, outcome) could never show it.
 */
export function stepsScheduledTwice(history: History): string[] {
  const seen = new Map<string, number>();
  for (const e of history.events ?? []) {
    const a = e.activityTaskScheduledEventAttributes;
    if (a?.activityType?.name !== 'applyVerifyRecord') continue;
    const input = JSON.parse(Buffer.from(a.input?.payloads?.[0]?.data ?? new Uint8Array()).toString('utf8')) as { stepId: string; operation: unknown };
    const phase = `${input.stepId} ${JSON.stringify(input.operation)}`;
    seen.set(phase, (seen.get(phase) ?? 0) + 1);
  }
  return [...seen].filter(([, n]) => n > 1).map(([phase, n]) => `${phase} x${n}`);
}

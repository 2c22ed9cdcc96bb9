import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { GatewayMetrics } from './metrics';

type Outcome = 'verified' | 'failed' | 'refused';
type Fields = Record<string, unknown>;

/**
 * How each step activity's input and result say what became of the step; an activity not named here ends no step.
 * `undefined`: this call did not end the step (a read-back that the workflow will repeat).
 */
const STEP_ENDINGS: Readonly<Record<string, (input: Fields, out: Fields) => { kind: string; outcome: Outcome } | undefined>> = {
  applyVerifyRecord: (input, out) => ({ kind: String(input.actionKind), outcome: out.verified === true ? 'verified' : out.refused === true ? 'refused' : 'failed' }),
  // The two-activity path of runs started before one activity per step: only its last read-back ends the step.
  verifyAndRecord: (input, out) =>
    out.verified === true ? { kind: String(input.actionKind), outcome: 'verified' } : input.recordOnFailure === true ? { kind: String(input.actionKind), outcome: 'failed' } : undefined,
  rotateAndDeliver: (_input, out) => ({ kind: 'rotate', outcome: out.verified === true ? 'verified' : 'failed' }),
  // A step whose activity failed past its retries: the workflow records the failure through this one.
  recordFailure: (input) => ({ kind: String(input.actionKind), outcome: 'failed' }),
};

/**
 * Counts, at the worker, what connector activities do: each step's outcome and its event-to-verified latency, and
 * each retried attempt of an activity that acts on a target system (Temporal's attempt number, from the context).
 * Only the activity's input and result are read; nothing here changes what an activity does or returns.
 */
export function activityMetrics(metrics: GatewayMetrics): ActivityInterceptorsFactory {
  return (ctx) => ({
    inbound: {
      async execute(input, next) {
        const args = (input.args[0] ?? {}) as Fields;
        const system = typeof args.system === 'string' ? args.system : undefined;
        const activity = ctx.info.activityType;
        if (system !== undefined && ctx.info.attempt > 1) metrics.retries.inc({ activity, system });
        const result = await next(input);
        const ending = system === undefined ? undefined : STEP_ENDINGS[activity]?.(args, (result ?? {}) as Fields);
        if (ending && system !== undefined) {
          metrics.steps.inc({ kind: ending.kind, system, outcome: ending.outcome });
          const out = (result ?? {}) as Fields;
          const from = Date.parse(String(args.eventReceivedAt));
          const to = Date.parse(String(out.verifiedAt));
          if (ending.outcome === 'verified' && Number.isFinite(from) && Number.isFinite(to)) {
            metrics.eventToVerified.observe({ kind: ending.kind, system }, Math.max(0, (to - from) / 1000));
          }
        }
        return result;
      },
    },
  });
}

/**
 * What every kind's step does the same way: act, read the target back (retrying while it catches up), record the
 * evidence before the step counts, and record a refusal as evidence too.
 */
import { ActivityFailure, ApplicationFailure, TimeoutFailure, log, patched } from '@temporalio/workflow';
import type { ApplyVerifyRecordResult, StepOperation } from '../../activities/connector-activities';
import type { StepState } from '../../src/change';
import type { DesiredAccount } from '../../src/connectors/connector';
import type { IdentityRef } from '../../src/actions/identity-action';
import type { PlannedAction } from '../../src/change';
import { describeSelection, selectionOf } from '../../src/change';
import type { KindContext } from './kind';

/** Verification attempts before a step counts as failed: a target may apply a change a moment after acknowledging it. */
const VERIFY_ATTEMPTS = 3;

/**
 * Apply, read back and record in one activity (applyVerifyRecord) instead of one activity each: a third of the task
 * round trips per step. Before this patch a step with a declared operation ran as apply + verifyAndRecord activities.
 */
const ONE_ACTIVITY_PER_STEP = 'one-activity-per-step';

/**
 * A worker lost mid-activity (its heartbeat stopped: the process or its host died) says nothing about the target, yet
 * before this patch it spent one of the step's attempts: in a 1000-ticket fault run with a worker killed every few
 * seconds, 76 steps ended failed "activity Heartbeat timeout" although no target had refused them, and their tickets
 * stayed blocked for good. Now an activity whose last attempt lost its worker is scheduled again, until a worker that
 * lives finishes it. The step activities are safe to run again (Temporal already retries them after a lost worker).
 */
const LOST_WORKER_SPENDS_NO_ATTEMPT = 'lost-worker-spends-no-attempt';

/** The activity's last attempt ended because its worker stopped heartbeating, not because the activity failed. */
export function lostWorker(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof TimeoutFailure && err.cause.timeoutType === 'HEARTBEAT';
}

/**
 * Activities scheduled in a row whose every attempt lost its worker before the step gives up (about 120 lost workers,
 * an hour or more of back-off): past that the loss repeats for a reason of its own (an activity that blocks the
 * worker's event loop, a connector that crashes it), and the step ends failed and named instead of running for ever.
 */
const LOST_WORKER_ROUNDS = 10;

/**
 * Runs a heartbeating step activity, scheduling it again whenever its attempts ran out on lost workers. The new
 * activity is given the lost attempt's last heartbeat (`earlierProgress`): what it had recorded before acting (a
 * move's plan) is not lost with it.
 */
export async function despiteLostWorkers<T>(activity: string, call: (earlierProgress?: { earlierProgress: unknown }) => Promise<T>): Promise<T> {
  let earlier: { earlierProgress: unknown } | undefined;
  for (let round = 1; ; round++) {
    try {
      return await call(earlier);
    } catch (err) {
      if (!lostWorker(err) || round >= LOST_WORKER_ROUNDS || !patched(LOST_WORKER_SPENDS_NO_ATTEMPT)) throw err;
      const details = (err as ActivityFailure & { cause: TimeoutFailure }).cause.lastHeartbeatDetails;
      if (details !== undefined) earlier = { earlierProgress: details };
      log.warn('step activity lost its worker on its last attempt; scheduling it again', { activity, round });
    }
  }
}

/** `transient`: the activity gave up on a fault that may pass (the target unreachable), not on a refusal or a disagreeing read-back. */
export type StepResult = { ok: true; verifiedAt: string; detail: string } | { ok: false; detail: string; transient?: boolean };

/** The evidence store refused the activity's row (it carried what a row may not): a failure row would be refused too. */
export function refusedByEvidence(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === 'EvidenceRefused';
}

/**
 * The activity gave up on a fault that may pass (the target unreachable, a timeout), not on a refusal: a refusal is a
 * non-retryable ApplicationFailure raised where the error was (a connector's or the evidence store's).
 */
export function transientFailure(err: unknown): boolean {
  return !(err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.nonRetryable);
}

/** The first wait before a target that could not be reached is tried again; it doubles up to the cap. */
const RETRY_FIRST_MS = 10_000;
const RETRY_CAP_MS = 15 * 60_000;

/** The wait after `attempts` failed attempts on a target that could not be reached: 10 s, doubling up to 15 minutes. */
export function retryDelayMs(attempts: number): number {
  return Math.min(RETRY_FIRST_MS * 2 ** (attempts - 1), RETRY_CAP_MS);
}

export function failureText(err: unknown): string {
  // Named here, not by the server: its text for this ("activity Heartbeat timeout") is no contract, and Temporal's
  // time-skipping test server sends none, which left a step failed by lost workers with an empty reason.
  if (lostWorker(err)) return 'its worker was lost (heartbeat timeout)';
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return err.cause.message;
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : 'unknown failure';
}

export function label(action: PlannedAction): string {
  const select = selectionOf(action);
  if (select) return describeSelection(action.kind, select);
  return `${action.kind} ${action.identity.name}@${action.identity.host ?? '%'} on ${action.system}`;
}

export async function applyAndVerify(
  ctx: KindContext,
  args: {
    stepId: string;
    outcome: string;
    desired: DesiredAccount;
    /** The change as separate apply + verifyAndRecord activities: what runs started before ONE_ACTIVITY_PER_STEP replay. */
    apply?: () => Promise<{ detail: string; startedAt: string; expected?: DesiredAccount }>;
    /** The same change as data, for the one-activity path; a step without one keeps apply + verifyAndRecord. */
    operation?: StepOperation;
    /** Told when the operation created the account. */
    onCreated?: () => void;
    /** Told what the one activity reported (a move's plan). */
    onApplied?: (out: ApplyVerifyRecordResult) => void;
  },
): Promise<StepResult> {
  const { key, step, targets } = ctx;
  const { stepId, outcome, apply } = args;
  // A kind newer than the patch has no apply: it never ran the old way, so there is no marker to ask for.
  const operation = args.operation;
  if (operation && (apply === undefined || ctx.since(ONE_ACTIVITY_PER_STEP))) {
    const a = step.action;
    let out: Awaited<ReturnType<typeof targets.applyVerifyRecord>>;
    try {
      out = await despiteLostWorkers('applyVerifyRecord', (earlier) =>
        targets.applyVerifyRecord({
          ticketKey: key, stepId, outcome, actionKind: a.kind, system: a.system, identity: a.identity, desired: args.desired,
          eventReceivedAt: step.eventReceivedAt, operation, attempts: VERIFY_ATTEMPTS, owner: a.owner, workload: a.workload, ...earlier,
        }),
      );
    } catch (err) {
      // Acting, the read-back or the evidence write failed past its retries: the step ends failed, never stuck
      // "running", and the failure is evidence too (or the detail says why even that could not be written).
      const error = `could not verify and record: ${failureText(err)}`;
      // The evidence store refused what the target read back: a failure row would carry the same read-back.
      if (refusedByEvidence(err)) return { ok: false, detail: error };
      return { ok: false, transient: transientFailure(err), detail: await recordStepFailure(ctx, { stepId, desired: args.desired, error, startedAt: '' }) };
    }
    if (out.created) args.onCreated?.();
    args.onApplied?.(out);
    if (out.verified) return { ok: true, verifiedAt: out.verifiedAt ?? new Date().toISOString(), detail: out.detail };
    return { ok: false, detail: out.refused ? out.detail : `not verified: ${out.mismatches.join('; ')}` };
  }
  if (!apply) return { ok: false, detail: `step ${stepId} has neither an operation nor an apply` };
  let desired = args.desired;
  const a = step.action;
  let startedAt = '';
  let detail = '';
  for (let attempt = 1; attempt <= VERIFY_ATTEMPTS; attempt++) {
    try {
      const applied = await apply();
      startedAt ||= applied.startedAt;
      detail = applied.detail;
      // The revoke policy says what a leaver or an expiry leaves behind (deleted, disabled and stripped, or already gone).
      if (applied.expected) desired = applied.expected;
    } catch (err) {
      const error = failureText(err);
      return { ok: false, detail: await recordStepFailure(ctx, { stepId, desired, error, startedAt }) };
    }
    let result: { verified: boolean; mismatches: string[]; verifiedAt?: string };
    try {
      result = await targets.verifyAndRecord({
        ticketKey: key, stepId, outcome, actionKind: a.kind, system: a.system, identity: a.identity, desired,
        applied: detail, eventReceivedAt: step.eventReceivedAt, startedAt, recordOnFailure: attempt === VERIFY_ATTEMPTS, owner: a.owner, workload: a.workload,
      });
    } catch (err) {
      // The read-back or the evidence write failed past its retries: the step ends failed, never stuck "running".
      return { ok: false, detail: `could not verify and record: ${failureText(err)}` };
    }
    if (result.verified) return { ok: true, verifiedAt: result.verifiedAt ?? new Date().toISOString(), detail };
    if (attempt === VERIFY_ATTEMPTS) return { ok: false, detail: `not verified: ${result.mismatches.join('; ')}` };
  }
  return { ok: false, detail: 'not verified' };
}

/**
 * Records a refused step as evidence. If even that fails past its retries (the evidence database is down), the step
 * still ends failed — closure stays blocked, with both causes in the detail — instead of hanging in "running".
 * `identity` and `eventReceivedAt` default to the step's; a deploy's pipeline run has an identity and an event of its own.
 */
export async function recordStepFailure(
  ctx: KindContext,
  args: { stepId: string; desired: DesiredAccount; error: string; startedAt: string; identity?: IdentityRef; eventReceivedAt?: string },
): Promise<string> {
  const { key, step, targets } = ctx;
  const a = step.action;
  try {
    await despiteLostWorkers('recordFailure', () =>
      targets.recordFailure({
        ticketKey: key, stepId: args.stepId, actionKind: a.kind, system: a.system, identity: args.identity ?? a.identity, desired: args.desired, error: args.error,
        eventReceivedAt: args.eventReceivedAt ?? step.eventReceivedAt, startedAt: args.startedAt || new Date().toISOString(),
      }),
    );
    return args.error;
  } catch (err) {
    return `${args.error} (and its evidence could not be recorded: ${failureText(err)})`;
  }
}

export function finish(step: StepState, result: StepResult): void {
  step.status = result.ok ? 'verified' : 'failed';
  step.detail = result.detail;
  if (result.ok) step.verifiedAt = result.verifiedAt;
}

/** The work note every step posts when it ends; its marker makes the write-back idempotent. */
export async function noteOutcome(ctx: KindContext, result: StepResult, extra = ''): Promise<void> {
  const { step } = ctx;
  await ctx.note(
    `${step.stepId}:${step.status}`,
    result.ok ? `Verified: ${label(step.action)} — ${result.detail}.${extra}` : `FAILED: ${label(step.action)} — ${result.detail}. Closure stays blocked.`,
  );
}

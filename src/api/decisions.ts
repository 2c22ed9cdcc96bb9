import { ApplicationFailure } from '@temporalio/common';
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { z } from 'zod';
import type { Principal } from '../auth/principal';
import { workflowIdFor } from '../change/ticket';
import { AppError, type AppErrorCode, formatPath } from '../errors';
import type { TicketSource } from '../itsm/source';
import type { Policy } from '../policy/policy';
import type { ChangeWorkflows } from '../temporal/temporal-client';
import type { StepDecisionInput, StepDecisionResult } from '../../workflows/step-decisions';
import { checkTicketKey } from './changes';

export const stepDecisionBody = z
  .object({
    decision: z.enum(['approve', 'reject'], { errorMap: () => ({ message: "must be 'approve' or 'reject'" }) }),
    // Its presence and content are the workflow's to judge (the update's validator), so every refusal has one source.
    justification: z.string().max(10_000).optional(),
  })
  .strict();

export const STEP_ID = /^[a-z][a-z0-9-]{0,30}:[0-9a-f]{16}$/;

/** How the update's validator refuses, as HTTP. */
export const REFUSALS: Record<string, { status: number; code: AppErrorCode }> = {
  Forbidden: { status: 403, code: 'FORBIDDEN' },
  NotFound: { status: 404, code: 'NOT_FOUND' },
  Conflict: { status: 409, code: 'CONFLICT' },
  BadRequest: { status: 400, code: 'VALIDATION_FAILED' },
};

/**
 * `POST /api/changes/{source}/{key}/steps/{stepId}/decision`: a change manager approves or rejects a step's
 * privileged grants. The ticket's workflow decides whether the decision may be taken (a Temporal update and its
 * validator) and records it as evidence naming the principal before it counts.
 */
export async function decideStep(
  deps: { workflows: ChangeWorkflows; policy: Policy },
  source: TicketSource,
  key: string,
  stepId: string,
  body: unknown,
  principal: Principal,
): Promise<StepDecisionResult> {
  const requestedAt = new Date().toISOString();
  checkTicketKey(source, key);
  if (!STEP_ID.test(stepId)) throw new AppError(400, 'VALIDATION_FAILED', 'invalid step id', [{ path: 'path.stepId', message: 'must be a step id closure-check reports, e.g. joiner:0123456789abcdef' }]);
  const parsed = stepDecisionBody.safeParse(body ?? {});
  if (!parsed.success) {
    throw new AppError(400, 'VALIDATION_FAILED', 'the decision is invalid', parsed.error.issues.map((i) => ({ path: formatPath(i.path) || '(body)', message: i.message })));
  }
  const input: StepDecisionInput = {
    stepId,
    decision: parsed.data.decision,
    ...(parsed.data.justification !== undefined ? { justification: parsed.data.justification } : {}),
    principal: { actor: principal.actor, roles: [...principal.roles], ticketUsers: deps.policy.ticketUsersOf(principal.actor, source.name) },
    requestedAt,
  };
  try {
    const handle = deps.workflows.client.workflow.getHandle(workflowIdFor(source.name, key));
    return await handle.executeUpdate<StepDecisionResult, [StepDecisionInput]>('decideStep', { args: [input] });
  } catch (err) {
    if (err instanceof WorkflowNotFoundError || (err instanceof Error && /already completed/i.test(err.message))) {
      // A finished ticket's workflow cannot take an update: tell "never received" from "finished".
      const finished = await deps.workflows.client.workflow.getHandle(workflowIdFor(source.name, key)).describe().then(() => true, () => false);
      if (finished) throw new AppError(409, 'CONFLICT', `change ${key} is finished: nothing is waiting for a decision`, [], { cause: err });
      throw new AppError(404, 'NOT_FOUND', `changegate has not received change ${key}`, [], { cause: err });
    }
    throw decisionRefusal(err) ?? err;
  }
}

/**
 * An update's refusal as HTTP: the validator's, or the decision's record refused by an activity (a justification
 * shaped like a credential). Undefined for any other failure.
 */
export function decisionRefusal(err: unknown): AppError | undefined {
  const refusal = err instanceof WorkflowUpdateFailedError ? refusalIn(err.cause) : undefined;
  if (!refusal) return undefined;
  const { status, code } = REFUSALS[refusal.type]!;
  return new AppError(status, code, refusal.message, [], { cause: err });
}

/** The first ApplicationFailure of a known refusal type in a failure's cause chain (an activity's is wrapped). */
export function refusalIn(failure: Error | undefined): { type: string; message: string } | undefined {
  for (let f: unknown = failure, depth = 0; f instanceof Error && depth < 5; f = (f as { cause?: unknown }).cause, depth++) {
    if (f instanceof ApplicationFailure && f.type && REFUSALS[f.type]) return { type: f.type, message: f.message };
  }
  return undefined;
}

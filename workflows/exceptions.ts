/**
 * Emergency exceptions in the change workflow: a grant an emergency change made before it was authorized is
 * reviewed after the fact. Its clock escalates it and, at the deadline, applies the policy's default; a security
 * reviewer's decision comes as a Temporal update whose validator refuses, with the reason, what must not be decided
 * (wrong role, the change's own requester or implementer, an unknown or decided exception, no justification).
 */
import { ApplicationFailure, condition, defineUpdate, proxyActivities, setHandler } from '@temporalio/workflow';
import type { ExceptionActivities } from '../activities';
import type { Actor } from '../src/auth/principal';
import { type ChangeState, DEADLINE_POLICY, EXCEPTION_DECISIONS, type ExceptionDecision, type StepException, type StepState, reviewTaskText } from '../src/change';
import { exceptions } from './activity-proxies';
import type { KindContext, WorkflowKind } from './kinds/kind';
import { label } from './kinds/step-runner';

export interface ExceptionDecisionRequest {
  exceptionId: string;
  decision: ExceptionDecision;
  justification?: string;
  /** The caller as the API authenticated it, with the ticket users the policy says it is (who-is-who). */
  principal: { actor: Actor; roles: string[]; ticketUsers: string[] };
  requestedAt: string;
}

export interface ExceptionDecisionResult {
  exceptionId: string;
  decision: ExceptionDecision;
  status: StepException['status'];
  evidenceHash: string;
}

export const decideExceptionUpdate = defineUpdate<ExceptionDecisionResult, [ExceptionDecisionRequest]>('decideException');

/** Failure types the API maps to status codes (src/api/decisions.ts): 403, 404, 409, 400. */
type Refusal = 'Forbidden' | 'NotFound' | 'Conflict' | 'BadRequest';
const refuse = (type: Refusal, message: string) => ApplicationFailure.create({ type, message, nonRetryable: true });

function stepOf(state: ChangeState, id: string): StepState | undefined {
  return state.steps.find((s) => s.exception !== undefined && s.exception.id === id && id !== '');
}

function refusal(state: ChangeState, input: ExceptionDecisionRequest): ApplicationFailure | undefined {
  const { roles, ticketUsers } = input.principal;
  if (!roles.includes('security-reviewer')) return refuse('Forbidden', 'only a security reviewer decides on emergency exceptions');
  if (state.requester !== undefined && ticketUsers.includes(state.requester)) {
    return refuse('Forbidden', 'the requester of the change may not decide on its emergency exception');
  }
  if (state.implementer !== undefined && ticketUsers.includes(state.implementer)) {
    return refuse('Forbidden', 'the implementer of the change may not decide on its emergency exception');
  }
  const exception = stepOf(state, input.exceptionId)?.exception;
  if (!exception) return refuse('NotFound', `the change has no emergency exception '${String(input.exceptionId).slice(0, 40)}'`);
  if (exception.deciding) return refuse('Conflict', `emergency exception ${exception.id} is being decided`);
  if (exception.decision) {
    const d = exception.decision;
    return refuse('Conflict', `emergency exception ${exception.id} is already decided: ${d.decision} by ${d.by.name} at ${d.at}`);
  }
  if (!(EXCEPTION_DECISIONS as readonly string[]).includes(input.decision)) return refuse('BadRequest', "decision: must be 'accept' or 'revoke'");
  if (typeof input.justification !== 'string' || input.justification.trim().length === 0) return refuse('BadRequest', 'justification: a decision needs one');
  if (input.justification.length > 2000) return refuse('BadRequest', 'justification: at most 2000 characters');
  return undefined;
}

/** What a decision is recorded with, whoever took it. */
function decisionInput(key: string, step: StepState, exception: StepException, decision: ExceptionDecision, justification: string, principal: Actor, byPolicy: boolean, requestedAt: string) {
  const a = step.action;
  return {
    ticketKey: key, id: exception.id, stepId: step.stepId, actionKind: a.kind, system: a.system, identity: a.identity, grants: exception.grants,
    decision, justification, principal, byPolicy, requestedAt,
  };
}

export function installExceptionDecisions(state: ChangeState, key: string, touch: () => void): void {
  setHandler(
    decideExceptionUpdate,
    async (input) => {
      // Validated a moment ago, but another decision (or the deadline's) may have been taken in between.
      const refused = refusal(state, input);
      if (refused) throw refused;
      const step = stepOf(state, input.exceptionId) as StepState;
      const exception = step.exception as StepException;
      const justification = (input.justification ?? '').trim();
      exception.deciding = true;
      try {
        const recorded = await exceptions.recordExceptionDecision(decisionInput(key, step, exception, input.decision, justification, input.principal.actor, false, input.requestedAt));
        exception.decision = { decision: input.decision, by: input.principal.actor, byPolicy: false, at: recorded.recordedAt, justification, evidenceHash: recorded.evidenceHash };
        // Decided: a revoke blocks closure until its take-back is done (the exception's clock carries it out).
        exception.status = input.decision === 'accept' ? 'accepted' : 'revoking';
        touch();
        return { exceptionId: exception.id, decision: input.decision, status: exception.status, evidenceHash: recorded.evidenceHash };
      } finally {
        exception.deciding = false;
      }
    },
    {
      validator: (input) => {
        const refused = refusal(state, input);
        if (refused) throw refused;
      },
    },
  );
}

const untilMs = (iso: string) => Math.max(0, Date.parse(iso) - Date.now());

/**
 * The life of one exception, from the verified grant made before authorization: opened (evidence, ledger, the review
 * task, a note), escalated once its share of the window passes undecided, decided by the policy's default at the
 * deadline, and then carried out: a revoke takes the grant back through the kind's undo, read back and evidenced.
 */
export async function runException(ctx: KindContext, undo: WorkflowKind['undo']): Promise<void> {
  const { step, state, key } = ctx;
  const a = step.action;
  const terms = a.exception;
  const opening = step.exception;
  if (!terms || !opening) return;
  const opened = await exceptions.openException({
    ticketKey: key, source: state.source, ticket: state.key, stepId: step.stepId, actionKind: a.kind, system: a.system, identity: a.identity, grants: opening.grants,
    ...(state.requester !== undefined ? { requester: state.requester } : {}),
    ...(state.implementer !== undefined ? { implementer: state.implementer } : {}),
    grantedAt: opening.grantedAt, windowMs: terms.windowMs, escalateAfterMs: terms.escalateAfterMs, onDeadline: terms.onDeadline, eventReceivedAt: step.eventReceivedAt,
  });
  const exception: StepException = { ...opening, id: opened.id, status: 'open', escalateAt: opened.escalateAt, deadline: opened.deadline, evidenceHash: opened.evidenceHash };
  step.exception = exception;
  const what = label(a);
  const task = reviewTaskText(exception, what);
  ctx.update?.({
    marker: `review-task:open:${exception.id}`,
    kind: 'review-task',
    body: { action: 'open', exceptionId: exception.id, shortDescription: task.short, description: task.description, assignmentGroup: terms.reviewGroup, deadline: exception.deadline, grants: exception.grants },
  });
  await ctx.note(
    `exception-opened:${exception.id}`,
    `Emergency exception ${exception.id}: ${what} was granted ${exception.grants.join(', ')} before the change was authorized. ` +
      `A security reviewer accepts or revokes it by ${exception.deadline} (with no decision by then: ${exception.onDeadline}); closure is blocked until then.`,
  );

  const decided = () => exception.decision !== undefined;
  const ref = { ticketKey: key, id: exception.id, stepId: step.stepId, actionKind: a.kind, system: a.system, identity: a.identity, deadline: exception.deadline, eventReceivedAt: step.eventReceivedAt };
  if (!(await condition(decided, untilMs(exception.escalateAt)))) {
    const { escalatedAt } = await exceptions.escalateException(ref);
    exception.escalatedAt = escalatedAt;
    if (!decided()) exception.status = 'escalated';
    ctx.touch();
    await ctx.note(
      `exception-escalated:${exception.id}`,
      `Emergency exception ${exception.id} escalated: no security reviewer has decided on ${what} since ${exception.grantedAt}. Deadline ${exception.deadline}; then the policy applies: ${exception.onDeadline}.`,
    );
    const { notified } = await exceptions.notifyException({
      id: exception.id, event: 'exception.escalated',
      payload: { ticket: `${state.source}:${state.key}`, system: a.system, identity: a.identity.name, grants: exception.grants, grantedAt: exception.grantedAt, deadline: exception.deadline, onDeadline: exception.onDeadline },
    });
    exception.notified = notified;
    ctx.touch();
  }
  // A person's decision may be being recorded when the deadline passes: it counts once recorded, and if its record
  // is refused the policy decides after all.
  while (!(decided() && !exception.deciding)) {
    if (await condition(() => decided() && !exception.deciding, untilMs(exception.deadline))) break;
    if (exception.deciding) {
      await condition(() => !exception.deciding);
      continue;
    }
    // No one decided: the policy does, and the evidence says so.
    exception.deciding = true;
    try {
      const justification = `no decision by the deadline ${exception.deadline}: the policy's default applies (${exception.onDeadline})`;
      const recorded = await exceptions.recordExceptionDecision(decisionInput(key, step, exception, exception.onDeadline, justification, DEADLINE_POLICY, true, exception.deadline));
      exception.decision = { decision: exception.onDeadline, by: DEADLINE_POLICY, byPolicy: true, at: recorded.recordedAt, justification, evidenceHash: recorded.evidenceHash };
    } finally {
      exception.deciding = false;
    }
  }
  await carryOut(ctx, exception, undo, what);
}

/** A revoke takes the grant back (read back and evidenced by the undo); either way the review task closes and the ticket is told. */
async function carryOut(ctx: KindContext, exception: StepException, undo: WorkflowKind['undo'], what: string): Promise<void> {
  const { step } = ctx;
  const d = exception.decision as NonNullable<StepException['decision']>;
  if (d.decision === 'revoke') {
    exception.status = 'revoking';
    ctx.touch();
    if (undo?.pending(step)) {
      undo.begin(step);
      await undo.run(ctx);
      exception.outcome = step.expiry?.status === 'verified' ? `taken back and verified at ${step.expiry.verifiedAt ?? 'now'}` : `the take-back failed: ${step.expiry?.detail ?? 'no detail'}`;
    } else {
      exception.outcome = `nothing to take back: the grant had already ended (cleanup ${step.expiry?.status ?? 'none'}, step ${step.status})`;
    }
    exception.status = 'revoked';
  } else {
    exception.status = 'accepted';
    exception.outcome = 'kept under its own cleanup path';
  }
  ctx.touch();
  const who = d.byPolicy ? 'the policy (no decision by the deadline)' : d.by.name;
  ctx.update?.({
    marker: `review-task:close:${exception.id}`,
    kind: 'review-task',
    body: {
      action: 'close', exceptionId: exception.id,
      closeCode: d.decision === 'accept' ? 'successful' : 'unsuccessful',
      closeNotes: `${d.decision === 'accept' ? 'Accepted' : 'Revoked'} by ${who}: ${d.justification}. ${exception.outcome}.`,
    },
  });
  await ctx.note(
    `exception-${d.decision}:${exception.id}`,
    `Emergency exception ${exception.id} ${d.decision === 'accept' ? 'accepted' : 'revoked'} by ${who}: ${d.justification}. ${what}: ${exception.outcome}.`,
  );
  await exceptions.recordExceptionOutcome({ id: exception.id, outcome: exception.outcome });
  if (d.byPolicy) {
    const { notified } = await exceptions.notifyException({
      id: exception.id, event: 'exception.deadline',
      payload: { ticket: `${ctx.state.source}:${ctx.state.key}`, system: step.action.system, decision: d.decision, outcome: exception.outcome },
    });
    exception.notified = notified;
  }
  ctx.touch();
}

/** Whether a step's grant is to be reviewed after the fact: the policy allowed it early, and it ran before authorization. */
export function opensException(step: StepState): boolean {
  return step.grantedEarly === true && step.status === 'verified' && step.exception === undefined;
}

/** The placeholder an exception has while its ledger row is written (closure says it is being opened). */
export function openingException(step: StepState): StepException {
  const terms = step.action.exception;
  const grants = Array.isArray(step.action.grants) ? (step.action.grants as string[]) : [];
  return { id: '', status: 'opening', grants, grantedAt: step.verifiedAt ?? '', escalateAt: '', deadline: '', onDeadline: terms?.onDeadline ?? 'revoke' };
}

export const exceptionReadBackProxy = proxyActivities<ExceptionActivities>({ startToCloseTimeout: '20 seconds', retry: { maximumAttempts: 2 } });

/** The queue's read-back: the identities' state on their targets now, read by the worker that holds the credentials. */
export async function exceptionReadBackWorkflow(items: Array<{ system: string; identity: StepState['action']['identity'] }>) {
  return exceptionReadBackProxy.readBackIdentities(items);
}

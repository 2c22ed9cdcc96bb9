/**
 * Emergency exceptions in the change workflow: a grant an emergency change made before it was authorized is
 * reviewed after the fact. Its clock escalates it and, at the deadline, applies the policy's default; a security
 * reviewer's decision comes as a Temporal update whose validator refuses, with the reason, what must not be decided
 * (wrong role, the change's own requester or implementer, an unknown or decided exception, no justification).
 */
import { type ApplicationFailure, condition, defineUpdate, setHandler } from '@temporalio/workflow';
import type { Actor } from '../src/auth/principal';
import { type ChangeState, DEADLINE_POLICY, EXCEPTION_DECISIONS, type ExceptionDecision, type StepException, type StepState, reviewTaskText } from '../src/change';
import { exceptionReadBack, exceptions } from './activity-proxies';
import type { KindContext, WorkflowKind } from './kinds/kind';
import { label } from './kinds/step-runner';
import { justificationRefusal, refuse } from './refusals';

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

function stepOf(state: ChangeState, id: string): StepState | undefined {
  return state.steps.find((s) => s.exception !== undefined && s.exception.id === id && id !== '');
}

function refusal(state: ChangeState, input: ExceptionDecisionRequest): ApplicationFailure | undefined {
  const { roles, ticketUsers } = input.principal;
  if (!roles.includes('security-reviewer')) return refuse('Forbidden', 'only a security reviewer decides on emergency exceptions');
  const exception = stepOf(state, input.exceptionId)?.exception;
  // The change's people now, and as they were when the grant was made (a reassigned implementer is still refused).
  const is = (user: string | undefined) => user !== undefined && ticketUsers.includes(user);
  if (is(state.requester) || is(exception?.requester)) return refuse('Forbidden', 'the requester of the change may not decide on its emergency exception');
  if (is(state.implementer) || is(exception?.implementer)) return refuse('Forbidden', 'the implementer of the change may not decide on its emergency exception');
  if (!exception) return refuse('NotFound', `the change has no emergency exception '${String(input.exceptionId).slice(0, 40)}'`);
  if (exception.deciding) return refuse('Conflict', `emergency exception ${exception.id} is being decided`);
  if (exception.decision) {
    const d = exception.decision;
    return refuse('Conflict', `emergency exception ${exception.id} is already decided: ${d.decision} by ${d.by.name} at ${d.at}`);
  }
  if (!(EXCEPTION_DECISIONS as readonly string[]).includes(input.decision)) return refuse('BadRequest', "decision: must be 'accept' or 'revoke'");
  return justificationRefusal(input.justification);
}

/** What a decision is recorded with, whoever took it. */
function decisionInput(key: string, step: StepState, exception: StepException, d: { decision: ExceptionDecision; justification: string; principal: Actor; byPolicy: boolean; requestedAt: string }) {
  const a = step.action;
  return { ticketKey: key, id: exception.id, stepId: step.stepId, actionKind: a.kind, system: a.system, identity: a.identity, grants: exception.grants, ...d };
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
        const recorded = await exceptions.recordExceptionDecision(
          decisionInput(key, step, exception, { decision: input.decision, justification, principal: input.principal.actor, byPolicy: false, requestedAt: input.requestedAt }),
        );
        exception.decision = { decision: input.decision, by: input.principal.actor, byPolicy: false, at: recorded.recordedAt, justification, evidenceHash: recorded.evidenceHash };
        // Decided, and still blocking closure until the exception's clock has carried it out (the review task closed
        // with the decision, a revoke's take-back done): the gate never opens ahead of the task's close.
        exception.status = input.decision === 'accept' ? 'accepting' : 'revoking';
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
  const exception: StepException = {
    ...opening, id: opened.id, status: 'open', escalateAt: opened.escalateAt, deadline: opened.deadline, evidenceHash: opened.evidenceHash,
    ...(state.requester !== undefined ? { requester: state.requester } : {}),
    ...(state.implementer !== undefined ? { implementer: state.implementer } : {}),
  };
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
    // A decision that landed while the escalation was recorded makes its announcement moot.
  }
  if (exception.escalatedAt && !decided()) {
    exception.status = 'escalated';
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
      const recorded = await exceptions.recordExceptionDecision(
        decisionInput(key, step, exception, { decision: exception.onDeadline, justification, principal: DEADLINE_POLICY, byPolicy: true, requestedAt: exception.deadline }),
      );
      exception.decision = { decision: exception.onDeadline, by: DEADLINE_POLICY, byPolicy: true, at: recorded.recordedAt, justification, evidenceHash: recorded.evidenceHash };
    } finally {
      exception.deciding = false;
    }
  }
  await carryOut(ctx, exception, undo, what);
}

/**
 * A revoke takes the grant back (read back and evidenced by the undo) whatever its cleanup path was doing: scheduled,
 * none, or failed, it runs now; a take-back already running is awaited. Either way the review task closes and the
 * ticket is told, in the same turn as the exception's final state, so the gate never opens ahead of them.
 */
async function carryOut(ctx: KindContext, exception: StepException, undo: WorkflowKind['undo'], what: string): Promise<void> {
  const { step } = ctx;
  const d = exception.decision as NonNullable<StepException['decision']>;
  let revokeVerified = true;
  if (d.decision === 'revoke') {
    exception.status = 'revoking';
    ctx.touch();
    await condition(() => step.expiry?.status !== 'running');
    const expiry = step.expiry?.status;
    if (undo && step.expiry && (undo.pending(step) || expiry === 'none' || expiry === 'failed')) {
      undo.begin(step);
      await undo.run(ctx);
      const after = step.expiry as NonNullable<StepState['expiry']>;
      revokeVerified = (after.status as string) === 'verified';
      exception.outcome = revokeVerified ? `taken back and verified at ${after.verifiedAt ?? 'now'}` : `the take-back failed: ${after.detail ?? 'no detail'}`;
    } else {
      exception.outcome = `nothing to take back: the grant was already taken back (cleanup ${expiry ?? 'none'}, step ${step.status})`;
    }
  } else {
    exception.outcome = 'kept under its own cleanup path';
  }
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
  exception.status = d.decision === 'accept' ? 'accepted' : 'revoked';
  const note = ctx.note(
    `exception-${d.decision}:${exception.id}`,
    `Emergency exception ${exception.id} ${d.decision === 'accept' ? 'accepted' : 'revoked'} by ${who}: ${d.justification}. ${what}: ${exception.outcome}.`,
  );
  ctx.touch();
  await note;
  await exceptions.recordExceptionOutcome({ id: exception.id, outcome: exception.outcome, status: d.decision === 'accept' ? 'accepted' : revokeVerified ? 'revoked' : 'revoke-failed' });
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

/** The queue's read-back: the identities' state on their targets now, read by the worker that holds the credentials. */
export async function exceptionReadBackWorkflow(items: Array<{ system: string; identity: StepState['action']['identity'] }>) {
  return exceptionReadBack.readBackIdentities(items);
}

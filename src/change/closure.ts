import { type StepException, isDecided } from './exception';
import { describeSelection, selectionOf } from './selection';
import type { ChangeState, StepState } from './change-state';

/**
 * The ticket's closure gate as the gateway writes it: `pending` while any identity step is open, `verified` once
 * every one is verified, `not_applicable` when the change never had a step to run. `digest` names the
 * identity-actions text the value is about ('' with `pending`).
 */
export type ClosureGateValue = 'pending' | 'verified' | 'not_applicable';

export interface ClosureGate {
  value: ClosureGateValue;
  digest: string;
}

export interface ClosureVerdict {
  allowed: boolean;
  reasons: string[];
}

/**
 * What a kind says about closure beyond the step status every kind shares: the reasons a verified step still blocks
 * (e.g. a grant with no cleanup path) and the cleanup it reports. The workflow half of each kind answers
 * (workflows/kinds/registry.ts); the domain names no kind.
 */
export interface KindClosureRules {
  blocksClosure?(step: StepState, what: string): string[];
  cleanup?(step: StepState): NonNullable<StepState['expiry']> | { status: 'none' };
}
export type ClosureRules = (kind: string) => KindClosureRules | undefined;

export function describe(step: StepState): string {
  const a = step.action;
  const select = selectionOf(a);
  if (select) return describeSelection(a.kind, select);
  return `${a.kind} of ${a.identity.name}${a.identity.host ? `@${a.identity.host}` : ''} on ${a.system}`;
}

/**
 * The closure gate: allowed only when every planned step is terminal and verified, and every grant has a cleanup
 * path. Pure, so the workflow and the API compute the same verdict from the same state.
 */
export function closureVerdict(state: Pick<ChangeState, 'steps'> & Partial<Pick<ChangeState, 'writeBackErrors' | 'outbox' | 'source'>>, rules: ClosureRules): ClosureVerdict {
  const reasons: string[] = (state.writeBackErrors ?? []).map((e) => `evidence could not be written to the ticket: ${e}`);
  // A transient failure blocks only until the outbox has delivered: the workflow keeps trying, however long it takes.
  const waiting = state.outbox?.waiting;
  if (waiting) {
    reasons.push(`waiting to deliver to ${state.source ?? 'the ticket'}: ${waiting.reason} (attempt ${waiting.attempts}, failing since ${waiting.since}; next at ${waiting.nextAttemptAt})`);
  }
  for (const step of state.steps) {
    const what = describe(step);
    switch (step.status) {
      case 'pending':
      case 'running':
        reasons.push(step.retrying ? `${what} is not verified yet: ${step.retrying.reason} (attempt ${step.retrying.attempts}; next at ${step.retrying.nextAttemptAt})` : `${what} is not verified yet`);
        break;
      case 'blocked':
        reasons.push(`${what} is blocked: ${step.detail ?? 'no detail'}`);
        break;
      case 'waiting-authorization':
        reasons.push(`${what} waits for the change to be approved and in Implement`);
        break;
      case 'waiting-approval':
        reasons.push(`${what} waits for a change manager to decide on privileged grant(s): ${(step.action.privileged ?? []).join(', ')}`);
        break;
      case 'failed':
        reasons.push(`${what} failed: ${step.detail ?? 'no detail'}`);
        break;
      case 'cancelled':
      case 'withdrawn':
      case 'rejected':
        break;
      case 'verified':
        reasons.push(...(rules(step.action.kind)?.blocksClosure?.(step, what) ?? []));
        break;
    }
    // A grant made before authorization blocks until a security reviewer (or the deadline) decides on it, whatever
    // became of the step since.
    const exception = step.exception;
    if (exception && !isDecided(exception)) {
      reasons.push(
        exception.status === 'opening'
          ? `${what} was granted before the change was authorized: its emergency exception is being opened`
          : exception.status === 'revoking'
            ? `emergency exception ${exception.id} was revoked: the grant of ${what} is being taken back`
            : `${what} was granted before the change was authorized: emergency exception ${exception.id} waits for a security reviewer's decision (deadline ${exception.deadline}, then ${exception.onDeadline})${exception.status === 'escalated' ? '; escalated' : ''}`,
      );
    }
  }
  return { allowed: reasons.length === 0, reasons };
}

/**
 * The gate the ticket should carry for this verdict, or undefined when the newest delivery did not say which
 * identity-actions text it had (a delivery accepted before gates carried a digest): a verdict bound to unknown text
 * would never match, so the gate is left as it is until the next delivery.
 */
export function closureGate(state: Pick<ChangeState, 'steps' | 'actionsDigest'>, verdict: ClosureVerdict): ClosureGate | undefined {
  if (state.actionsDigest === undefined) return undefined;
  if (!verdict.allowed) return { value: 'pending', digest: '' };
  const ran = state.steps.some((s) => s.status !== 'withdrawn' && s.status !== 'cancelled' && s.status !== 'rejected');
  return { value: ran ? 'verified' : 'not_applicable', digest: state.actionsDigest };
}

/** What closure-check answers about a ticket, before the evidence cross-check: the same from the workflow and the API. */
export interface ClosureView {
  ticket: string;
  allowed: boolean;
  reasons: string[];
  /** The source's own word for the ticket's state. */
  ticketState: string;
  /** Absent from views published before tickets were normalised. */
  phase?: ChangeState['phase'];
  steps: Array<{
    stepId: string;
    kind: string;
    system: string;
    identity: StepState['action']['identity'];
    status: StepState['status'];
    detail?: string;
    verifiedAt?: string;
    cleanup?: NonNullable<StepState['expiry']> | { status: 'none' };
    /** Privileged grants and the decision on them, where the policy asks for one. */
    approval?: { grants: string[]; decision?: StepState['decision'] };
    /** A selecting step: what it planned from the inventory (its size, its systems). */
    plan?: StepState['plan'];
    /** A step a selecting step planned: that step's id. */
    plannedBy?: string;
    /** A grant made before authorization: its emergency exception. */
    exception?: StepException;
  }>;
}

export function closureView(state: ChangeState, rules: ClosureRules): ClosureView {
  const verdict = closureVerdict(state, rules);
  return {
    ticket: state.key,
    allowed: verdict.allowed,
    reasons: verdict.reasons,
    ticketState: state.sourceState,
    phase: state.phase,
    steps: state.steps.map((s) => ({
      stepId: s.stepId,
      kind: s.action.kind,
      system: s.action.system,
      identity: s.action.identity,
      status: s.status,
      detail: s.detail,
      verifiedAt: s.verifiedAt,
      cleanup: rules(s.action.kind)?.cleanup?.(s),
      ...(s.action.privileged?.length ? { approval: { grants: s.action.privileged, ...(s.decision ? { decision: s.decision } : {}) } } : {}),
      ...(s.plan ? { plan: s.plan } : {}),
      ...(typeof s.action.via === 'string' ? { plannedBy: s.action.via } : {}),
      ...(s.exception ? { exception: s.exception } : {}),
    })),
  };
}

/**
 * A change manager's decision on a step's privileged grants, taken as a Temporal update: the validator refuses, with
 * the reason, what must not be decided (wrong role, the ticket's own requester, a step that is not waiting, no
 * justification), so a refused decision leaves no trace in history; an accepted one is evidence before it counts.
 */
import { type ApplicationFailure, defineUpdate, setHandler } from '@temporalio/workflow';
import type { Actor } from '../src/auth/principal';
import type { ChangeState, StepState } from '../src/change';
import { privilegedPending } from '../src/change';
import { decisions } from './activity-proxies';
import { justificationRefusal, refuse } from './refusals';

export interface StepDecisionInput {
  stepId: string;
  decision: 'approve' | 'reject';
  justification?: string;
  /** The caller as the API authenticated it, with the ticket users the policy says it is (who-is-who). */
  principal: { actor: Actor; roles: string[]; ticketUsers: string[] };
  requestedAt: string;
}

export interface StepDecisionResult {
  stepId: string;
  decision: 'approve' | 'reject';
  status: StepState['status'];
  evidenceHash: string;
}

export const decideStepUpdate = defineUpdate<StepDecisionResult, [StepDecisionInput]>('decideStep');


function refusal(state: ChangeState, input: StepDecisionInput, deciding: ReadonlySet<string>): ApplicationFailure | undefined {
  if (!input.principal.roles.includes('change-manager')) return refuse('Forbidden', 'only a change manager decides on privileged grants');
  if (state.requester !== undefined && input.principal.ticketUsers.includes(state.requester)) {
    return refuse('Forbidden', 'the requester of the change may not decide on its privileged grants (self-approval)');
  }
  const step = state.steps.find((s) => s.stepId === input.stepId);
  if (!step) return refuse('NotFound', `the change has no step '${input.stepId.slice(0, 100)}'`);
  if (step.status !== 'waiting-approval' || deciding.has(step.stepId)) {
    return refuse('Conflict', `step ${step.stepId} is not waiting for a decision (it is ${deciding.has(step.stepId) ? 'being decided' : step.status})`);
  }
  return justificationRefusal(input.justification);
}

export function installStepDecisions(state: ChangeState, key: string, touch: () => void): void {
  const deciding = new Set<string>();
  setHandler(
    decideStepUpdate,
    async (input) => {
      // Validated a moment ago, but another decision may have been accepted in between.
      const refused = refusal(state, input, deciding);
      if (refused) throw refused;
      const step = state.steps.find((s) => s.stepId === input.stepId) as StepState;
      const grants = privilegedPending(step);
      const justification = (input.justification ?? '').trim();
      deciding.add(step.stepId);
      try {
        const a = step.action;
        const recorded = await decisions.recordDecision({
          ticketKey: key, stepId: step.stepId, actionKind: a.kind, system: a.system, identity: a.identity,
          decision: input.decision, justification, grants, principal: input.principal.actor, requestedAt: input.requestedAt,
        });
        step.decision = { decision: input.decision, by: input.principal.actor, at: recorded.recordedAt, justification, grants, evidenceHash: recorded.evidenceHash };
        // While the decision was recorded the step may have moved on (withdrawn from the ticket, cancelled): the
        // decision stays evidence, and changes nothing else.
        if (step.status !== 'waiting-approval' && step.status !== 'waiting-authorization') {
          touch();
          return { stepId: step.stepId, decision: input.decision, status: step.status, evidenceHash: recorded.evidenceHash };
        }
        if (input.decision === 'approve') {
          // The loop starts it while the change is still authorized.
          step.status = 'waiting-authorization';
        } else {
          step.status = 'rejected';
          step.detail = `privileged grant(s) ${grants.join(', ')} rejected by ${input.principal.actor.name}: ${justification}`;
        }
        touch();
        return { stepId: step.stepId, decision: input.decision, status: step.status, evidenceHash: recorded.evidenceHash };
      } finally {
        deciding.delete(step.stepId);
      }
    },
    {
      validator: (input) => {
        const refused = refusal(state, input, deciding);
        if (refused) throw refused;
      },
    },
  );
}

import { ApplicationFailure } from '@temporalio/activity';
import type { Actor } from '../src/auth/principal';
import type { IdentityRef } from '../src/actions/identity-action';
import type { EvidenceStore } from '../src/evidence/evidence-store';
import { EvidenceRefusal } from '../src/evidence/redaction';

export interface DecisionActivityDeps {
  evidence: EvidenceStore;
  /** The worker's identity, as recorded in evidence. */
  actor: string;
}

export interface RecordDecisionInput {
  ticketKey: string;
  stepId: string;
  actionKind: string;
  system: string;
  identity: IdentityRef;
  decision: 'approve' | 'reject';
  justification: string;
  grants: string[];
  /** The person (or token) who decided: the evidence row's principal. */
  principal: Actor;
  requestedAt: string;
}

export function createDecisionActivities({ evidence, actor }: DecisionActivityDeps) {
  return {
    /**
     * Records a decision on a step's privileged grants in the ticket's evidence chain, naming who decided and why,
     * before the workflow acts on it. Idempotent per (ticket, step, outcome): a retry gets the same row.
     */
    async recordDecision(input: RecordDecisionInput): Promise<{ evidenceHash: string; recordedAt: string }> {
      const now = new Date().toISOString();
      try {
        const row = await evidence.append({
          ticketKey: input.ticketKey,
          stepId: input.stepId,
          outcome: input.decision === 'approve' ? 'approved' : 'rejected',
          actionKind: input.actionKind,
          system: input.system,
          identity: { ...input.identity },
          desiredState: {},
          observedState: {},
          // A decision is not a read-back of a target: it never counts as a verified change.
          verified: false,
          verification: { decision: input.decision, justification: input.justification, grants: input.grants },
          actor,
          principal: input.principal,
          eventReceivedAt: input.requestedAt,
          startedAt: now,
          verifiedAt: null,
        });
        return { evidenceHash: row.hash, recordedAt: row.recordedAt };
      } catch (err) {
        if (err instanceof EvidenceRefusal) {
          // The justification holds something shaped like a credential: the person must say it another way.
          throw ApplicationFailure.create({ message: `justification: ${err.message}`, type: 'BadRequest', nonRetryable: true, cause: err });
        }
        throw err;
      }
    },
  };
}

export type DecisionActivities = ReturnType<typeof createDecisionActivities>;

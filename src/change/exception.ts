/**
 * Emergency exceptions: access an emergency change granted before it was authorized, reviewed after the fact. Pure
 * data and rules shared by the workflow bundle, the activities and the API (the ledger, the notifications and the
 * review task's wire form live in src/exceptions).
 */
import type { Actor } from '../auth/principal';

/** What the policy says about every exception: how long the review may take, when it escalates, what the deadline does. */
export interface ExceptionTerms {
  /** ISO-8601 duration from the verified grant to the deadline, as the policy wrote it. */
  window: string;
  windowMs: number;
  /** Milliseconds after the grant at which an undecided exception is escalated. */
  escalateAfterMs: number;
  /** What happens at the deadline with no decision; `revoke` unless the policy says `accept`. */
  onDeadline: ExceptionDecision;
  /** The ServiceNow assignment group the review task goes to. */
  reviewGroup: string;
}

export const EXCEPTION_DECISIONS = ['accept', 'revoke'] as const;
export type ExceptionDecision = (typeof EXCEPTION_DECISIONS)[number];

/**
 * `open` until decided (`escalated` once its escalation point passed undecided); `accepted`, or `revoking` while a
 * revoke's take-back runs and `revoked` once it has run (verified or not: the step's cleanup says which).
 */
export type ExceptionStatus = 'opening' | 'open' | 'escalated' | 'accepted' | 'revoking' | 'revoked';

/** The actor of a decision the policy took at the deadline: evidenced as the policy's, not a person's. */
export const DEADLINE_POLICY: Actor = { kind: 'policy', id: 'policy:exceptions.onDeadline', name: 'changegate policy (no decision by the deadline)' };

/** An exception as its change workflow keeps it on the step (and closure-check reports it). */
export interface StepException {
  id: string;
  status: ExceptionStatus;
  grants: string[];
  grantedAt: string;
  escalateAt: string;
  deadline: string;
  onDeadline: ExceptionDecision;
  evidenceHash?: string;
  escalatedAt?: string;
  /** The escalation's outbound notification: delivered, not configured, or why it failed. */
  notified?: string;
  decision?: {
    decision: ExceptionDecision;
    by: Actor;
    byPolicy: boolean;
    at: string;
    justification: string;
    evidenceHash: string;
  };
  /** What the decision did on the target (a revoke's verified take-back, or why there was nothing to take back). */
  outcome?: string;
  /** A decision is being recorded (a person's, or the deadline's): another is refused meanwhile. */
  deciding?: boolean;
}

export const isDecided = (e: Pick<StepException, 'status'>): boolean => e.status === 'accepted' || e.status === 'revoked';

/** The ledger id of the exception of one step: stable, so a retried open finds the row it wrote. */
export const EXCEPTION_ID = /^EXC-[0-9A-F]{16}$/;

/** The review task's texts, the same on every source. */
export function reviewTaskText(e: { id: string; deadline: string; grants: string[] }, what: string): { short: string; description: string } {
  return {
    short: 'Post Implementation Review',
    description:
      `Emergency exception ${e.id}: ${what} was granted ${e.grants.join(', ')} before the change was authorized. ` +
      `A security reviewer accepts or revokes it (POST /api/exceptions/${e.id}/decision) by ${e.deadline}; the ticket cannot close until then.`,
  };
}

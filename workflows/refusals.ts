/**
 * How a decision's update validator refuses: an ApplicationFailure of a type the API maps to a status code
 * (src/api/decisions.ts), final, so a refused decision leaves no trace in history.
 */
import { ApplicationFailure } from '@temporalio/workflow';

export type Refusal = 'Forbidden' | 'NotFound' | 'Conflict' | 'BadRequest';

export const refuse = (type: Refusal, message: string): ApplicationFailure => ApplicationFailure.create({ type, message, nonRetryable: true });

/** A decision's justification: present, not blank, at most 2000 characters. */
export function justificationRefusal(justification: unknown): ApplicationFailure | undefined {
  if (typeof justification !== 'string' || justification.trim().length === 0) return refuse('BadRequest', 'justification: a decision needs one');
  if (justification.length > 2000) return refuse('BadRequest', 'justification: at most 2000 characters');
  return undefined;
}

/**
 * An exception's review task on its ticket: the wire form every ticket source reads (src/change/exception.ts has the
 * exception itself).
 */
import { z } from 'zod';
import { EXCEPTION_ID } from '../change/exception';

/**
 * An exception's review on its ticket, as the workflow records it for the outbox (update kind `review-task`): opened
 * when the exception is, closed with the decision's close code (`successful` when accepted, `unsuccessful` when
 * revoked) and notes. Every source reads the same body.
 */
export const reviewTaskBody = z.discriminatedUnion('action', [
  z.object({
    action: z.literal('open'), exceptionId: z.string().regex(EXCEPTION_ID), shortDescription: z.string().min(1).max(160), description: z.string().max(4000),
    assignmentGroup: z.string().min(1).max(100), deadline: z.string().max(40), grants: z.array(z.string().max(300)).max(100),
  }),
  z.object({ action: z.literal('close'), exceptionId: z.string().regex(EXCEPTION_ID), closeCode: z.enum(['successful', 'successful_issues', 'unsuccessful']), closeNotes: z.string().min(1).max(4000) }),
]);
export type ReviewTaskBody = z.infer<typeof reviewTaskBody>;

/** Parses a review-task update's body, or says what is wrong with it. */
export function parseReviewTask(body: unknown): { ok: true; value: ReviewTaskBody } | { ok: false; problem: string } {
  const parsed = reviewTaskBody.safeParse(body);
  return parsed.success ? { ok: true, value: parsed.data } : { ok: false, problem: `a review-task update is malformed: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}` };
}

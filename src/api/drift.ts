import { z } from 'zod';
import { FINDING_TYPES } from '../drift/drift';
import type { DriftStore } from '../drift/drift-store';
import { AppError } from '../errors';
import { pageCursor, pageLimit, queryIssues } from './paging';

export const FINDING_ID = /^[0-9a-f]{32}$/;

export const driftListQuery = z
  .object({
    system: z.string().min(1).max(100).optional(),
    type: z.enum(FINDING_TYPES, { errorMap: () => ({ message: `must be one of ${FINDING_TYPES.join(', ')}` }) }).optional(),
    status: z.enum(['open', 'resolved'], { errorMap: () => ({ message: "must be 'open' or 'resolved'" }) }).optional(),
    limit: pageLimit,
    cursor: pageCursor(FINDING_ID),
  })
  .strict();

/** `GET /api/drift`: what discovery found different from the approved state, filtered and paged by finding id. */
export async function listDrift(deps: { drift: DriftStore }, query: unknown) {
  const parsed = driftListQuery.safeParse(query ?? {});
  if (!parsed.success) {
    throw new AppError(400, 'VALIDATION_FAILED', 'the drift query is invalid', queryIssues(parsed.error, ['system', 'type', 'status', 'limit', 'cursor']));
  }
  const { cursor, limit = 100, ...filters } = parsed.data;
  return { ...(await deps.drift.list({ ...filters, ...(cursor ? { afterId: cursor } : {}), limit })), limit };
}

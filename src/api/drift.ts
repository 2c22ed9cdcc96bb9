import { z } from 'zod';
import { FINDING_TYPES } from '../drift/drift';
import type { DriftStore } from '../drift/drift-store';
import { AppError, formatPath } from '../errors';

const FINDING_ID = /^[0-9a-f]{32}$/;

const listQuery = z
  .object({
    system: z.string().min(1).max(100).optional(),
    type: z.enum(FINDING_TYPES, { errorMap: () => ({ message: `must be one of ${FINDING_TYPES.join(', ')}` }) }).optional(),
    status: z.enum(['open', 'resolved'], { errorMap: () => ({ message: "must be 'open' or 'resolved'" }) }).optional(),
    limit: z
      .string()
      .regex(/^[0-9]{1,4}$/, 'must be a whole number from 1 to 500')
      .transform(Number)
      .pipe(z.number().int().min(1, 'must be a whole number from 1 to 500').max(500, 'must be a whole number from 1 to 500'))
      .optional(),
    cursor: z.string().regex(FINDING_ID, 'must be the nextCursor a previous page returned').optional(),
  })
  .strict();

/** `GET /api/drift`: what discovery found different from the approved state, filtered and paged by finding id. */
export async function listDrift(deps: { drift: DriftStore }, query: unknown) {
  const parsed = listQuery.safeParse(query ?? {});
  if (!parsed.success) {
    throw new AppError(400, 'VALIDATION_FAILED', 'the drift query is invalid', parsed.error.issues.map((i) => {
      if (i.code === z.ZodIssueCode.unrecognized_keys) return { path: 'query', message: `unknown filter ${i.keys.map((k) => `'${k.slice(0, 40)}'`).join(', ')} (filters: system, type, status, limit, cursor)` };
      return { path: `query.${formatPath(i.path)}`, message: i.code === z.ZodIssueCode.invalid_type && i.received === 'array' ? 'must be given once' : i.message };
    }));
  }
  const { cursor, limit = 100, ...filters } = parsed.data;
  return { ...(await deps.drift.list({ ...filters, ...(cursor ? { afterId: cursor } : {}), limit })), limit };
}

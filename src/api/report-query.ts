import { z } from 'zod';
import { AppError } from '../errors';
import { kindNames } from '../kinds/registry';
import { MAX_WINDOW_MS, type ReportWindow, reportWindow } from '../reports/report-window';
import { queryIssues } from './paging';

const instant = z
  .string()
  .max(40)
  .datetime({ offset: true, message: 'must be an ISO 8601 time with a zone (2026-01-31T12:00:00Z)' });

/** The filters every report takes: its window of time and one target system. */
export const reportFilters = {
  since: instant.optional().describe('Start of the window (default: a week before `until`)'),
  until: instant.optional().describe('End of the window (default: now)'),
  system: z.string().min(1).max(100).optional().describe('One target system (a configured connector name)'),
};

export const kindFilter = z
  .string()
  .refine((k) => kindNames().includes(k), { message: `must be an action kind (${kindNames().join(', ')})` })
  .optional();

/** A report's query, refused field by field; its window must run forwards and span at most a year. */
export function parseReportQuery<T extends z.ZodRawShape>(
  schema: z.ZodObject<T, 'strict'>,
  query: unknown,
  what: string,
): z.infer<z.ZodObject<T, 'strict'>> & { window: ReportWindow } {
  const parsed = schema.safeParse(query ?? {});
  const filters = Object.keys(schema.shape);
  if (!parsed.success) throw new AppError(400, 'VALIDATION_FAILED', `the ${what} query is invalid`, queryIssues(parsed.error, filters));
  const data = parsed.data as z.infer<z.ZodObject<T, 'strict'>> & { since?: string; until?: string };
  const window = reportWindow(data);
  const span = window.until.getTime() - window.since.getTime();
  if (span <= 0) throw new AppError(400, 'VALIDATION_FAILED', `the ${what} query is invalid`, [{ path: 'query.since', message: 'must be before until' }]);
  if (span > MAX_WINDOW_MS) throw new AppError(400, 'VALIDATION_FAILED', `the ${what} query is invalid`, [{ path: 'query.since', message: 'the window spans at most 366 days' }]);
  return { ...data, window };
}

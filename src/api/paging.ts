import { z } from 'zod';
import { formatPath, type FieldIssue } from '../errors';

/** `limit` of a paged listing: a whole number from 1 to 500, as query text. */
export const pageLimit = z
  .string()
  .regex(/^[0-9]{1,4}$/, 'must be a whole number from 1 to 500')
  .transform(Number)
  .pipe(z.number().int().min(1, 'must be a whole number from 1 to 500').max(500, 'must be a whole number from 1 to 500'))
  .optional();

/** `cursor` of a paged listing: the `nextCursor` a previous page returned, in the listing's own id form. */
export const pageCursor = (id: RegExp) => z.string().regex(id, 'must be the nextCursor a previous page returned').optional();

/** A listing's query refused field by field: an unknown filter names the ones there are; a repeated one says so. */
export function queryIssues(error: z.ZodError, filters: readonly string[]): FieldIssue[] {
  return error.issues.map((i) => {
    if (i.code === z.ZodIssueCode.unrecognized_keys) return { path: 'query', message: `unknown filter ${i.keys.map((k) => `'${k.slice(0, 40)}'`).join(', ')} (filters: ${filters.join(', ')})` };
    // A repeated parameter arrives as an array: one value per filter.
    const message = i.code === z.ZodIssueCode.invalid_type && i.received === 'array' ? 'must be given once' : i.message;
    return { path: `query.${formatPath(i.path)}`, message };
  });
}

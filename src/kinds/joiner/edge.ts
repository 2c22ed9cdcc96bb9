import { z } from 'zod';
import { parseIsoDuration } from '../../actions/iso-duration';
import { checkGrantLifetime } from '../grant-policy';
import type { EdgeKind } from '../registry';
import type { PlannedAction } from '../../change/ticket';
import { commonFields, privilegedOf } from '../spec';

/** Beyond any sane policy, and far inside what a Date and a Temporal timer can hold. Policies cap lower. */
const TTL_CEILING_MS = 100 * 365 * 86_400_000;

export const ttl = z.string().max(64).superRefine((text, ctx) => {
  const ms = parseIsoDuration(text);
  if (ms === null) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `'${text.slice(0, 40)}' is not an ISO-8601 duration (e.g. PT8H)` });
  else if (ms < 1000) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be at least one second (PT1S)' });
  else if (ms > TTL_CEILING_MS) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be at most 100 years (P100Y)' });
});

/** Ticket-scoped access: the grant ends when the ticket closes, or at the change window's end (ServiceNow `end_date`). */
export const until = z.enum(['ticket-closed', 'window-end'], { errorMap: () => ({ message: "must be 'ticket-closed' or 'window-end'" }) });

export const joinerSchema = z
  .object({
    kind: z.literal('joiner'),
    ...commonFields,
    grants: z.array(z.string().min(1).max(200)).min(1, 'a joiner needs at least one grant').max(50),
    ttl: ttl.optional(),
    until: until.optional(),
  })
  .strict();
export type JoinerAction = z.infer<typeof joinerSchema>;

/** A planned joiner: grants in the connector's canonical form, sorted and de-duplicated. */
export interface JoinerPlan extends PlannedAction {
  kind: 'joiner';
  grants: string[];
  ttlMs?: number;
  ttl?: string;
  until?: 'ticket-closed' | 'window-end';
}

export function ttlMs(action: { ttl?: string }): number | undefined {
  return action.ttl === undefined ? undefined : (parseIsoDuration(action.ttl) ?? undefined);
}

export const joinerEdge: EdgeKind<JoinerAction> = {
  kind: 'joiner',
  schema: joinerSchema,
  plan(action, { actionId, entry, issue }): JoinerPlan {
    const grants: string[] = [];
    action.grants.forEach((g, gi) => {
      const parsedGrant = entry.grammar.parseGrant(g);
      if ('problem' in parsedGrant) issue(`grants[${gi}]`, parsedGrant.problem);
      else grants.push(...parsedGrant.canonical);
    });
    const ms = ttlMs(action);
    if (ms !== undefined && entry.policy.maxTtlMs !== undefined && ms > entry.policy.maxTtlMs) {
      issue('ttl', `exceeds the policy maximum for ${action.system}`);
    }
    const wanted = [...new Set(grants)].sort();
    checkGrantLifetime(wanted, ms, action.ttl, entry, action.system, issue);
    return { actionId, kind: 'joiner', system: action.system, identity: action.identity, grants: wanted, ttlMs: ms, ttl: action.ttl, ...(action.until ? { until: action.until } : {}), ...privilegedOf(wanted, entry) };
  },
};

import { z } from 'zod';
import type { PlannedAction } from '../../change/ticket';
import { checkGrantLifetime } from '../grant-policy';
import type { EdgeKind } from '../registry';
import { commonFields, privilegedOf } from '../spec';
import { ttl, ttlMs, until } from '../joiner/edge';

export const moverSchema = z
  .object({
    kind: z.literal('mover'),
    ...commonFields,
    /** The complete set of grants wanted after the change (empty: none of the grants changegate manages). */
    grants: z.array(z.string().min(1).max(200)).max(50),
    /** How long the grants the move adds last, counted from their verified grant. */
    ttl: ttl.optional(),
    until: until.optional(),
  })
  .strict();
export type MoverAction = z.infer<typeof moverSchema>;

/** A planned mover: the wanted grants in the connector's canonical form, sorted and de-duplicated. */
export interface MoverPlan extends PlannedAction {
  kind: 'mover';
  grants: string[];
  ttlMs?: number;
  ttl?: string;
  until?: 'ticket-closed' | 'window-end';
}

export const moverEdge: EdgeKind<MoverAction> = {
  kind: 'mover',
  schema: moverSchema,
  plan(action, { actionId, entry, issue }): MoverPlan {
    const grants: string[] = [];
    action.grants.forEach((g, gi) => {
      const parsed = entry.grammar.parseGrant(g);
      if ('problem' in parsed) issue(`grants[${gi}]`, parsed.problem);
      else grants.push(...parsed.canonical);
    });
    const ms = ttlMs(action);
    if (ms !== undefined && entry.policy.maxTtlMs !== undefined && ms > entry.policy.maxTtlMs) {
      issue('ttl', `exceeds the policy maximum for ${action.system}`);
    }
    const wanted = [...new Set(grants)].sort();
    checkGrantLifetime(wanted, ms, action.ttl, entry, action.system, issue);
    return { actionId, kind: 'mover', system: action.system, identity: action.identity, grants: wanted, ttlMs: ms, ttl: action.ttl, ...(action.until ? { until: action.until } : {}), ...privilegedOf(wanted, entry) };
  },
};

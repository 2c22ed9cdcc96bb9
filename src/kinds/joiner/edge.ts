import { z } from 'zod';
import { type GrantPlan, planGrants, ttl, until } from '../grant-policy';
import type { EdgeKind } from '../registry';
import type { PlannedAction } from '../../change/ticket';
import { commonFields } from '../spec';

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
export interface JoinerPlan extends PlannedAction, GrantPlan {
  kind: 'joiner';
}

export const joinerEdge: EdgeKind<JoinerAction> = {
  kind: 'joiner',
  schema: joinerSchema,
  plan(action, ctx): JoinerPlan {
    const grants = planGrants(action, ctx);
    // An emergency grant the policy allows before authorization runs at once and is reviewed after the fact; a
    // privileged one still waits for a change manager first.
    const terms = ctx.ticket?.emergency === true && !grants.privileged && ctx.entry.policy.beforeAuthorization('joiner') ? ctx.entry.policy.exceptionTerms() : undefined;
    return { actionId: ctx.actionId, kind: 'joiner', system: action.system, identity: action.identity, ...grants, ...(terms ? { startsAtOnce: true, exception: terms } : {}) };
  },
};

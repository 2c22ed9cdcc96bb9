import { z } from 'zod';
import type { PlannedAction } from '../../change/ticket';
import { type GrantPlan, planGrants, ttl, until } from '../grant-policy';
import type { EdgeKind } from '../registry';
import { commonFields } from '../spec';

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
export interface MoverPlan extends PlannedAction, GrantPlan {
  kind: 'mover';
}

export const moverEdge: EdgeKind<MoverAction> = {
  kind: 'mover',
  schema: moverSchema,
  plan(action, ctx): MoverPlan {
    // What a move adds is known only from its read-back: a move that only removes needs no cleanup path.
    return { actionId: ctx.actionId, kind: 'mover', system: action.system, identity: action.identity, ...planGrants(action, ctx, 'refuse-when-adding') };
  },
};

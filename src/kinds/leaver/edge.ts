import { z } from 'zod';
import type { EdgeKind } from '../registry';
import { selectionAction } from '../selection';
import { attributionSchema, commonFields } from '../spec';

/**
 * A leaver names one identity on one system, or, with `owner` and no system, every identity the inventory lists for
 * that owner (`reassignTo` takes over the non-human ones that still serve a workload).
 */
export const leaverSchema = z
  .object({
    kind: z.literal('leaver'),
    ...commonFields,
    system: commonFields.system.optional(),
    identity: commonFields.identity.optional(),
    reassignTo: attributionSchema.optional(),
  })
  .strict();
export type LeaverAction = z.infer<typeof leaverSchema>;

export const leaverEdge: EdgeKind<LeaverAction> = {
  kind: 'leaver',
  schema: leaverSchema,
  plan(action, ctx) {
    if (action.system === undefined) {
      if (action.identity !== undefined) ctx.issue('system', 'is required with identity (or leave both out and name an owner)');
      else if (action.owner === undefined) ctx.issue('owner', 'is required when no system and identity are named: a leaver by owner revokes what the inventory lists for them');
      if (action.workload !== undefined) ctx.issue('workload', 'is not allowed on a leaver by owner (a decommission retires a workload)');
      return selectionAction(ctx.actionId, 'leaver', { by: 'owner', value: action.owner ?? '', ...(action.reassignTo ? { reassignTo: action.reassignTo } : {}) });
    }
    if (action.identity === undefined) ctx.issue('identity', 'is required with system');
    if (action.reassignTo !== undefined) ctx.issue('reassignTo', 'applies only to a leaver by owner (no system and identity)');
    return { actionId: ctx.actionId, kind: 'leaver', system: action.system, identity: action.identity ?? { type: 'person', name: '' } };
  },
};

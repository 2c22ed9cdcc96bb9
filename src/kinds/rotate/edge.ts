import { z } from 'zod';
import type { EdgeKind } from '../registry';
import type { PlannedAction } from '../../change/ticket';
import { commonFields } from '../spec';

/** Where a rotated credential goes: a path in a secrets-store connector, the place the workload reads it. */
export const secretDestinationSchema = z
  .object({
    system: z.string().min(1, 'must name a configured secrets connector').max(100),
    path: z.string().min(1, 'must not be empty').max(256, 'must be at most 256 characters'),
  })
  .strict();
export type SecretDestination = z.infer<typeof secretDestinationSchema>;

export const rotateSchema = z.object({ kind: z.literal('rotate'), ...commonFields, deliverTo: secretDestinationSchema }).strict();
export type RotateAction = z.infer<typeof rotateSchema>;

export interface RotatePlan extends PlannedAction {
  kind: 'rotate';
  deliverTo: SecretDestination;
}

export const rotateEdge: EdgeKind<RotateAction> = {
  kind: 'rotate',
  schema: rotateSchema,
  plan(action, { actionId, entry, grammars, issue, ticket }): RotatePlan {
    if (!entry.capabilities.rotation) issue('system', `${action.system} has no credentials the gateway rotates`);
    const store = grammars.get(action.deliverTo.system);
    if (!store?.capabilities.secretSink || !store.grammar.validateSecretPath) {
      issue('deliverTo.system', `'${action.deliverTo.system.slice(0, 100)}' is not a configured secrets store`);
    } else {
      const problem = store.grammar.validateSecretPath(action.deliverTo.path);
      if (problem) issue('deliverTo.path', problem);
    }
    // An emergency rotation the policy allows runs at once (a leaked credential is replaced before anyone meets).
    const atOnce = ticket?.emergency === true && entry.policy.beforeAuthorization('rotate');
    return { actionId, kind: 'rotate', system: action.system, identity: action.identity, deliverTo: action.deliverTo, ...(atOnce ? { startsAtOnce: true } : {}) };
  },
};

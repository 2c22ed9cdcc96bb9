import { z } from 'zod';
import type { PlannedAction } from '../../src/change';
import type { EdgeKind } from '../../src/kinds/registry';
import { commonFields } from '../../src/kinds/spec';

/**
 * The edge half of a kind that exists only in the tests: `attest` asks the gateway to prove, by read-back and
 * evidence, that an identity exists on a system. Registered at run time through the edge registry's `register()`.
 */
export const attestSchema = z.object({ kind: z.literal('attest'), ...commonFields }).strict();

export const attestEdge: EdgeKind<z.infer<typeof attestSchema>> = {
  kind: 'attest',
  schema: attestSchema,
  plan: (action, { actionId }): PlannedAction => ({ actionId, kind: 'attest', system: action.system, identity: action.identity }),
};

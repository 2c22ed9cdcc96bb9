import { z } from 'zod';
import type { EdgeKind } from '../registry';
import { commonFields } from '../spec';

export const leaverSchema = z.object({ kind: z.literal('leaver'), ...commonFields }).strict();
export type LeaverAction = z.infer<typeof leaverSchema>;

/** Revoke an identity: nothing to check beyond the system and identity every action has. */
export const leaverEdge: EdgeKind<LeaverAction> = {
  kind: 'leaver',
  schema: leaverSchema,
  plan: (action, { actionId }) => ({ actionId, kind: 'leaver', system: action.system, identity: action.identity }),
};

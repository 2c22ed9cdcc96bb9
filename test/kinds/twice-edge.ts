import { z } from 'zod';
import type { PlannedAction } from '../../src/change';
import type { EdgeKind } from '../../src/kinds/registry';
import { commonFields } from '../../src/kinds/spec';

/** The edge half of the test-only `twice` kind (test/kinds/twice-kind.ts): planned like a leaver by name. */
export const twiceSchema = z.object({ kind: z.literal('twice'), ...commonFields }).strict();

export const twiceEdge: EdgeKind<z.infer<typeof twiceSchema>> = {
  kind: 'twice',
  schema: twiceSchema,
  plan: (action, { actionId }): PlannedAction => ({ actionId, kind: 'twice', system: action.system, identity: action.identity }),
};

import { z } from 'zod';
import type { EdgeKind } from '../registry';
import { selectionAction } from '../selection';
import { attributionSchema } from '../spec';

export const decommissionSchema = z
  .object({
    kind: z.literal('decommission'),
    /** The configuration item retired (ServiceNow `cmdb_ci`); the ticket's own configuration item when omitted. */
    workload: attributionSchema.optional(),
  })
  .strict();
export type DecommissionAction = z.infer<typeof decommissionSchema>;

/**
 * Retire a workload: every identity the inventory links to it, on every system, is revoked per policy, each as its
 * own verified step, once the change is authorized. The plan is read from the inventory when the ticket arrives.
 */
export const decommissionEdge: EdgeKind<DecommissionAction> = {
  kind: 'decommission',
  schema: decommissionSchema,
  plan: (action, ctx) => {
    const workload = action.workload ?? ctx.ticket?.configurationItem;
    if (workload === undefined) {
      ctx.issue('workload', 'is required: the ticket names no configuration item (cmdb_ci) to decommission');
      return selectionAction(ctx.actionId, 'decommission', { by: 'workload', value: '' });
    }
    return selectionAction(ctx.actionId, 'decommission', { by: 'workload', value: workload });
  },
};

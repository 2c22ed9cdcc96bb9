import type { WorkflowKind } from './kind';
import { runSelection } from './selection';

/**
 * Retire a workload: the plan is read from the inventory as soon as the ticket arrives (closure-check shows it and
 * its size), and each identity is revoked per policy once the change is authorized. Nothing to undo.
 */
export const decommissionKind: WorkflowKind = {
  kind: 'decommission',
  starts: 'at-once',
  run: (ctx) => runSelection(ctx, 'when-authorized'),
};

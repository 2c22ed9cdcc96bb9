import type { WorkflowKind } from './kind';
import { reassignSelected, revokeSelected, runSelection } from './selection';
import { applyAndVerify, finish, noteOutcome } from './step-runner';
import { selectionOf } from '../../src/change';

/**
 * Revoke early: a leaver runs whatever the ticket's phase; a revocation has nothing to undo. A leaver by owner plans
 * its identities from the inventory and revokes each as its own step; one a selecting step planned keeps trying a
 * target that cannot be reached.
 */
export const leaverKind: WorkflowKind = {
  kind: 'leaver',
  starts: 'at-once',
  async run(ctx) {
    const a = ctx.step.action;
    if (selectionOf(a)) return runSelection(ctx, 'at-once');
    if (typeof a.via === 'string') return revokeSelected(ctx);
    const result = await applyAndVerify(ctx, {
      stepId: ctx.step.stepId, outcome: 'revoked', desired: { exists: false },
      apply: () => ctx.targets.applyLeaver({ system: a.system, identity: a.identity }),
      operation: { op: 'revoke' },
    });
    finish(ctx.step, result);
    await noteOutcome(ctx, result);
  },
};

/** A leaver by owner's hand-over of a non-human identity that still serves a workload: only planned, never named on a ticket. */
export const reassignKind: WorkflowKind = {
  kind: 'reassign',
  starts: 'at-once',
  run: reassignSelected,
};

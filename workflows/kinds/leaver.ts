import type { WorkflowKind } from './kind';
import { applyAndVerify, finish, noteOutcome } from './step-runner';

/** Revoke early: a leaver runs whatever the ticket's phase; a revocation has nothing to undo. */
export const leaverKind: WorkflowKind = {
  kind: 'leaver',
  starts: 'at-once',
  async run(ctx) {
    const a = ctx.step.action;
    const result = await applyAndVerify(ctx, {
      stepId: ctx.step.stepId, outcome: 'revoked', desired: { exists: false },
      apply: () => ctx.targets.applyLeaver({ system: a.system, identity: a.identity }),
      operation: { op: 'revoke' },
    });
    finish(ctx.step, result);
    await noteOutcome(ctx, result);
  },
};

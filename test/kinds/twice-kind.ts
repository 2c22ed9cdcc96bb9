import type { WorkflowKind } from '../../workflows/kinds/kind';
import { applyAndVerify, finish, noteOutcome } from '../../workflows/kinds/step-runner';

/**
 * The workflow half of the test-only `twice` kind: a leaver with the defect the fault suite's stepsDoneTwice looks
 * for, revoking its step in two schedulings of the same operation.
 */
export const twiceKind: WorkflowKind = {
  kind: 'twice',
  starts: 'at-once',
  async run(ctx) {
    const revoke = () => applyAndVerify(ctx, { stepId: ctx.step.stepId, outcome: 'revoked', desired: { exists: false }, operation: { op: 'revoke' } });
    await revoke();
    const result = await revoke();
    finish(ctx.step, result);
    await noteOutcome(ctx, result);
  },
};

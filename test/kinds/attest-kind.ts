import type { WorkflowKind } from '../../workflows/kinds/kind';
import { applyAndVerify, finish, noteOutcome } from '../../workflows/kinds/step-runner';

/** The workflow half of the test-only `attest` kind: changes nothing, reads the target back, records what it saw. */
export const attestKind: WorkflowKind = {
  kind: 'attest',
  starts: 'at-once',
  async run(ctx) {
    const result = await applyAndVerify(ctx, {
      stepId: ctx.step.stepId,
      outcome: 'attested',
      desired: { exists: true },
      apply: async () => ({ detail: 'nothing applied: attestation only', startedAt: new Date().toISOString() }),
    });
    finish(ctx.step, result);
    await noteOutcome(ctx, result);
  },
};

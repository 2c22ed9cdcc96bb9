import type { RotatePlan } from '../../src/kinds/rotate/edge';
import { certifyVerifiedStep } from './certify-step';
import type { WorkflowKind } from './kind';
import { type StepResult, despiteLostWorkers, failureText, finish, noteOutcome, recordStepFailure } from './step-runner';

/** A rotation changes a live credential, so it waits for authorization like a grant. */
export const rotateKind: WorkflowKind = {
  kind: 'rotate',
  starts: 'when-authorized',
  async run(ctx) {
    const { key, step } = ctx;
    const a = step.action as RotatePlan;
    let result: StepResult;
    try {
      const out = await despiteLostWorkers('rotateAndDeliver', () =>
        ctx.targets.rotateAndDeliver({
          ticketKey: key, stepId: step.stepId, system: a.system, identity: a.identity, deliverTo: a.deliverTo, eventReceivedAt: step.eventReceivedAt,
          owner: a.owner, workload: a.workload,
        }),
      );
      if (out.verified) step.rotation = { fingerprint: out.fingerprint, version: out.version, credentialId: out.keyId };
      result = out.verified ? { ok: true, verifiedAt: out.verifiedAt ?? new Date().toISOString(), detail: out.detail } : { ok: false, detail: `not verified: ${out.detail}` };
    } catch (err) {
      const error = failureText(err);
      result = { ok: false, detail: await recordStepFailure(ctx, { stepId: step.stepId, desired: { exists: true }, error, startedAt: '' }) };
    }
    finish(step, result);
    if (result.ok) await certifyVerifiedStep(ctx, 'rotation', a.system, a.identity);
    await noteOutcome(ctx, result);
  },
};

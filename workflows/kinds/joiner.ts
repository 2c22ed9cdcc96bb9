import { condition } from '@temporalio/workflow';
import type { JoinerPlan } from '../../src/kinds/joiner/edge';
import type { KindContext, WorkflowKind } from './kind';
import { applyAndVerify, finish, label, noteOutcome } from './step-runner';

/**
 * Grant late (once the change is authorized and in its window), verify, and take the grant back when its ttl ends
 * or the change is cancelled. The ttl is the cleanup path closure requires.
 */
export const joinerKind: WorkflowKind = {
  kind: 'joiner',
  starts: 'when-authorized',
  async run(ctx) {
    const { step } = ctx;
    const a = step.action as JoinerPlan;
    const result = await applyAndVerify(ctx, {
      stepId: step.stepId, outcome: 'granted', desired: { exists: true, mustHave: a.grants },
      apply: async () => {
        const out = await ctx.targets.applyJoiner({ system: a.system, identity: a.identity, grants: a.grants });
        step.accountCreated = step.accountCreated || out.created;
        return out;
      },
      operation: { op: 'grant', grants: a.grants },
      onCreated: () => {
        step.accountCreated = true;
      },
    });
    finish(step, result);
    if (result.ok) {
      step.expiry = a.ttlMs === undefined ? { status: 'none' } : { status: 'scheduled', expiresAt: new Date(Date.now() + a.ttlMs).toISOString() };
    }
    ctx.touch();
    const expiryNote = step.expiry?.expiresAt ? ` Expires ${step.expiry.expiresAt} (ttl ${a.ttl}).` : ' No ttl: closure stays blocked until a cleanup path exists.';
    await noteOutcome(ctx, result, expiryNote);
    if (result.ok && step.expiry?.status === 'scheduled' && a.ttlMs !== undefined) {
      // The durable timer: survives worker restarts; ends early if the change is cancelled (its undo runs instead).
      const expired = await condition(() => step.expiry?.status !== 'scheduled', a.ttlMs);
      if (!expired) {
        step.expiry.status = 'running';
        await expire(ctx);
      }
    }
  },
  blocksClosure(step, what) {
    const expiry = step.expiry?.status ?? 'none';
    if (expiry === 'none') return [`${what} has no cleanup path (no ttl)`];
    if (expiry === 'failed') return [`expiry of ${what} failed: ${step.expiry?.detail ?? 'no detail'}`];
    if (expiry === 'running') return [`expiry of ${what} is not verified yet`];
    return [];
  },
  cleanup: (step) => step.expiry ?? { status: 'none' },
  undo: {
    pending: (step) => step.expiry?.status === 'scheduled',
    begin(step) {
      if (step.expiry) step.expiry.status = 'running';
    },
    run: expire,
  },
};

/** Takes back what the joiner granted (the account too, if the joiner created it), read back and evidenced. */
async function expire(ctx: KindContext): Promise<void> {
  const { step } = ctx;
  const a = step.action as JoinerPlan;
  if (!step.expiry) return;
  const dropAccount = step.accountCreated === true;
  const result = await applyAndVerify(ctx, {
    stepId: `expiry:${a.actionId}`, outcome: 'expired',
    desired: dropAccount ? { exists: false } : { exists: true, mustNotHave: a.grants },
    apply: () => ctx.targets.applyExpiry({ system: a.system, identity: a.identity, grants: a.grants, dropAccount }),
    operation: { op: 'take-back', grants: a.grants, dropAccount },
  });
  step.expiry.status = result.ok ? 'verified' : 'failed';
  step.expiry.detail = result.detail;
  if (result.ok) step.expiry.verifiedAt = result.verifiedAt;
  await ctx.note(
    `expiry:${a.actionId}:${step.expiry.status}`,
    result.ok ? `Verified expiry: ${label(a)} — ${result.detail}.` : `FAILED expiry: ${label(a)} — ${result.detail}.`,
  );
}

import type { JoinerPlan } from '../../src/kinds/joiner/edge';
import { awaitExpiry, expiryNote, grantBlocksClosure, grantUndo, scheduleExpiry, takeBackGrants } from './grant-expiry';
import type { KindContext, WorkflowKind } from './kind';
import { applyAndVerify, finish, noteOutcome } from './step-runner';

/**
 * Grant late (once the change is authorized and in its window), verify, and take the grant back when its ttl ends
 * or the change is cancelled. The ttl, the ticket's end or standing access the policy allows (owned, so the owner's
 * leaver ends it) is the cleanup path closure requires.
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
      operation: { op: 'grant', grants: a.grants, ...(a.standing ? { standing: true } : {}) },
      onCreated: () => {
        step.accountCreated = true;
      },
    });
    finish(step, result);
    if (result.ok) scheduleExpiry(step, a, ctx.state.windowEnd);
    ctx.touch();
    await noteOutcome(ctx, result, expiryNote(step, a.ttl));
    if (result.ok) await awaitExpiry(ctx, a.ttlMs, () => expire(ctx));
  },
  blocksClosure: grantBlocksClosure,
  cleanup: (step) => step.expiry ?? { status: 'none' },
  undo: grantUndo(expire),
};

/** Takes back what the joiner granted (the account too, if the joiner created it). */
function expire(ctx: KindContext): Promise<void> {
  return takeBackGrants(ctx, (ctx.step.action as JoinerPlan).grants, ctx.step.accountCreated === true);
}

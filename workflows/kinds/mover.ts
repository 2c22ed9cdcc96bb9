import { type StepState, isAuthorized, needsDecision } from '../../src/change';
import type { MoverPlan } from '../../src/kinds/mover/edge';
import { describeMove, type MovePlan } from '../../src/kinds/mover/move-plan';
import { certifyVerifiedStep } from './certify-step';
import { awaitExpiry, expiryNote, grantBlocksClosure, grantUndo, scheduleExpiry, takeBackGrants } from './grant-expiry';
import type { KindContext, WorkflowKind } from './kind';
import { applyAndVerify, finish, label, noteOutcome, recordStepFailure, type StepResult } from './step-runner';

/**
 * A mover brings an existing identity's grants to the complete set the change wants, planned from a read-back of
 * the target. What it holds and is no longer wanted goes at once (revoke early); what is wanted and missing is
 * granted once the change is authorized (grant late), when whatever came back in between goes too. Grants the
 * connector does not manage are reported and never touched. Added grants expire with the ttl, like a joiner's, or are
 * standing access the policy allows; a move that would add grants with no cleanup path is refused before it adds.
 */
export const moverKind: WorkflowKind = {
  kind: 'mover',
  starts: 'at-once',
  async run(ctx) {
    const { step } = ctx;
    const a = step.action as MoverPlan;
    if (!step.move) {
      let plan: MovePlan | undefined;
      const removal = await applyAndVerify(ctx, {
        stepId: step.stepId, outcome: 'ungranted', desired: { exists: true },
        operation: { op: 'move', wanted: a.grants, phase: 'remove' },
        onApplied: (out) => {
          plan = out.moved;
        },
      });
      if (!removal.ok || !plan) return end(ctx, removal);
      step.move = { kept: plan.kept, removed: plan.remove, added: [], unmanaged: plan.unmanaged, toAdd: plan.add };
      if (plan.add.length === 0) return end(ctx, { ...removal, detail: moveText(step) });
      // Only plans made since standing access was a rule carry this: a run planned before keeps its old path.
      if (a.noCleanupPath?.length) {
        const reasons = a.noCleanupPath.map((p) => p.reason).join('; ');
        const error = `${moveText(step)}; refused to add ${plan.add.join(', ')}: a move with neither a ttl nor an until that adds must want only standing access the policy allows: ${reasons}`;
        step.move.toAdd = [];
        return end(ctx, { ok: false, detail: await recordStepFailure(ctx, { stepId: step.stepId, desired: { exists: true, mustHave: plan.add }, error, startedAt: '' }) });
      }
      // Adding waits for authorization, and a privileged grant for a change manager's approval too: the loop gates both.
      if (!isAuthorized(ctx.state) || needsDecision(step)) {
        step.status = 'waiting-authorization';
        step.detail = `${moveText(step)}; waits for authorization to add: ${plan.add.join(', ')}`;
        ctx.touch();
        await ctx.note(
          `${step.stepId}:removed`,
          `Verified removal: ${label(a)} — ${moveText(step)}. Adding ${plan.add.join(', ')} waits for the change to be approved and in Implement${needsDecision(step) ? ', and for a change manager to decide on its privileged grants' : ''}.`,
        );
        return;
      }
    }
    let plan: MovePlan | undefined;
    const result = await applyAndVerify(ctx, {
      stepId: step.stepId, outcome: 'granted', desired: { exists: true, mustHave: a.grants },
      operation: { op: 'move', wanted: a.grants, phase: 'reconcile', ...(a.standing ? { standing: true } : {}) },
      onApplied: (out) => {
        plan = out.moved;
      },
    });
    const move = step.move;
    if (!result.ok || !plan || !move) return end(ctx, result);
    // Whatever came back between the two phases was removed now too. What the move adds is what phase one found
    // missing plus what this read-back did: a retried activity re-plans from a target it already changed, and must
    // not lose the grants its first attempt added (they must still expire).
    const added = [...new Set([...move.toAdd, ...plan.add])].filter((g) => a.grants.includes(g)).sort();
    step.move = { ...move, removed: [...new Set([...move.removed, ...plan.remove])].sort(), added, unmanaged: plan.unmanaged, toAdd: [] };
    return end(ctx, { ...result, detail: moveText(step) });
  },
  blocksClosure: (step, what) => (step.move && step.move.added.length > 0 ? grantBlocksClosure(step, what) : []),
  cleanup: (step) => step.expiry ?? { status: 'none' },
  undo: grantUndo(expire),
};

function moveText(step: StepState): string {
  const m = step.move;
  return m ? describeMove({ kept: m.kept, remove: m.removed, add: m.added, unmanaged: m.unmanaged }) : '';
}

/** Ends the step; grants the move added start their expiry clock, as a joiner's do. */
async function end(ctx: KindContext, result: StepResult): Promise<void> {
  const { step } = ctx;
  const a = step.action as MoverPlan;
  finish(step, result);
  const added = result.ok && (step.move?.added.length ?? 0) > 0;
  if (added) scheduleExpiry(step, a, ctx.state.windowEnd);
  ctx.touch();
  if (result.ok) await certifyVerifiedStep(ctx, 'mover', a.system, a.identity);
  await noteOutcome(ctx, result, added ? expiryNote(step, a.ttl) : '');
  if (added) await awaitExpiry(ctx, a.ttlMs, () => expire(ctx));
}

/** Takes back exactly what the move added; the identity and everything it held before stay. */
function expire(ctx: KindContext): Promise<void> {
  return takeBackGrants(ctx, ctx.step.move?.added ?? [], false);
}

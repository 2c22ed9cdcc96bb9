import type { WorkflowKind } from '../../workflows/kinds/kind';

/**
 * The workflow half of the test-only `stamp` kind: touches no target; it records an attachment for the ticket through
 * the outbox (ctx.update) and a note, and is verified at once. It shows that updates other than notes and the gate
 * take the same path, for any source.
 */
export const stampKind: WorkflowKind = {
  kind: 'stamp',
  starts: 'at-once',
  async run(ctx) {
    if (!ctx.update) throw new Error('this run has no ticket outbox');
    ctx.update({ marker: `${ctx.step.stepId}:attachment`, kind: 'attachment', body: { fileName: `${ctx.step.action.identity.name}.json`, content: { stamped: ctx.step.stepId } } });
    await ctx.note(`${ctx.step.stepId}:verified`, `Stamped ${ctx.step.action.identity.name}`);
    ctx.step.status = 'verified';
    ctx.step.verifiedAt = new Date().toISOString();
    ctx.touch();
  },
};

/**
 * What a selecting step does (a decommission, a leaver by owner): read its identities from the inventory, record
 * that plan as evidence, and add one step per identity to the ticket — a revocation per policy, a hand-over to
 * another owner, or a step blocked with the reason it cannot run. Each runs and verifies like any step; closure
 * waits for every one of them.
 */
import { condition, proxyActivities, sleep } from '@temporalio/workflow';
import { REACH_ONCE_RETRY } from '../activity-proxies';
import type { ConnectorActivities, SelectionActivities } from '../../activities';
import type { PlannedIdentity, SelectionPlan } from '../../activities/selection-activities';
import { type StepState, isAuthorized, isFinal, selectionOf } from '../../src/change';
import type { KindContext } from './kind';
import { applyAndVerify, failureText, finish, label, noteOutcome, retryDelayMs } from './step-runner';

const selections = proxyActivities<SelectionActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '10 seconds', maximumAttempts: 10 },
});

/**
 * A selected identity's revocation gives up on an unreachable target after a few seconds instead of minutes: the
 * step then says why it waits (closure-check shows it) and tries again later, for as long as it takes.
 */
const reachOnce = proxyActivities<ConnectorActivities>({
  startToCloseTimeout: '2 minutes',
  retry: REACH_ONCE_RETRY,
});

/**
 * Plans a selecting step and adds its steps. `runWhen` is when the selected revocations may run: at once (a leaver
 * by owner: revoke early) or once the change is authorized (a decommission); then the inventory is read once more,
 * and what was linked to the selection since the first plan joins it.
 */
export async function runSelection(ctx: KindContext, runWhen: 'at-once' | 'when-authorized'): Promise<void> {
  const { step, state } = ctx;
  const select = selectionOf(step.action);
  if (!select) {
    finish(step, { ok: false, detail: 'the action selects nothing' });
    return;
  }
  const plan = async (outcome: 'planned' | 'planned-at-authorization'): Promise<SelectionPlan | string> => {
    try {
      return await selections.planSelection({
        ticketKey: ctx.key, stepId: step.stepId, actionId: step.action.actionId, actionKind: step.action.kind, select, outcome, eventReceivedAt: step.eventReceivedAt,
      });
    } catch (err) {
      return failureText(err);
    }
  };
  const authorizedFirst = isAuthorized(state);
  const first = await plan('planned');
  if (typeof first === 'string') {
    finish(step, { ok: false, detail: `the inventory could not be read for the plan: ${first}` });
    await ctx.note(`${step.stepId}:failed`, `FAILED: ${label(step.action)} — ${step.detail}. Closure stays blocked.`);
    return;
  }
  const added = adopt(ctx, first, runWhen);
  step.plan = first.summary;
  finish(step, { ok: true, verifiedAt: first.summary.plannedAt, detail: planDetail(first) });
  await ctx.note(`${step.stepId}:planned`, `Planned: ${label(step.action)} — ${planDetail(first)}${added.length > 0 ? `: ${added.map((s) => describeStep(s)).join('; ')}` : ''}.`);
  ctx.touch();
  if (runWhen === 'at-once' || authorizedFirst) return;
  await condition(() => isAuthorized(state) || isFinal(state.phase) || step.dropped === true);
  if (!isAuthorized(state) || step.dropped === true) return;
  const again = await plan('planned-at-authorization');
  if (typeof again === 'string') {
    // The first plan stands (and runs); what the second look would have added is unknown, which closure must say.
    state.writeBackErrors.push(`${label(step.action)}: the inventory could not be read again at authorization: ${again}`);
    ctx.touch();
    return;
  }
  const more = adopt(ctx, again, runWhen);
  if (more.length > 0) {
    step.plan = { ...again.summary, size: step.plan.size + more.length };
    await ctx.note(`${step.stepId}:planned-at-authorization`, `Planned at authorization: ${label(step.action)} — ${more.length} more identit${more.length === 1 ? 'y' : 'ies'} linked since the first plan: ${more.map((s) => describeStep(s)).join('; ')}.`);
    ctx.touch();
  }
}

/** Adds the plan's identities that are not steps yet; returns the new steps. */
function adopt(ctx: KindContext, plan: SelectionPlan, runWhen: 'at-once' | 'when-authorized'): StepState[] {
  const { step, state } = ctx;
  const added: StepState[] = [];
  for (const i of plan.identities) {
    if (state.steps.some((s) => s.action.actionId === i.actionId)) continue;
    const child: StepState = {
      stepId: `${i.kind}:${i.actionId}`,
      action: { actionId: i.actionId, kind: i.kind, system: i.system, identity: i.identity, via: step.stepId, ...(i.reassign ? { reassign: i.reassign } : {}) },
      status: statusOf(i, runWhen, isAuthorized(state)),
      ...(i.blocked ? { detail: i.blocked } : {}),
      eventReceivedAt: step.eventReceivedAt,
    };
    state.steps.push(child);
    added.push(child);
  }
  return added;
}

function statusOf(i: PlannedIdentity, runWhen: 'at-once' | 'when-authorized', authorized: boolean): StepState['status'] {
  if (i.blocked) return 'blocked';
  // A hand-over changes no target: it needs no authorization to be recorded.
  if (i.reassign || runWhen === 'at-once' || authorized) return 'pending';
  return 'waiting-authorization';
}

function planDetail(plan: SelectionPlan): string {
  const s = plan.summary;
  if (s.size === 0) return 'the inventory lists no identity for it: nothing to do';
  return `${s.size} identit${s.size === 1 ? 'y' : 'ies'} on ${s.systems.join(', ')}: ${s.revoke} to revoke, ${s.reassign} to hand over, ${s.blocked} blocked`;
}

function describeStep(s: StepState): string {
  const what = `${s.action.identity.name}${s.action.identity.host ? `@${s.action.identity.host}` : ''} on ${s.action.system}`;
  if (s.status === 'blocked') return `${what} blocked (${s.detail ?? ''})`;
  const r = s.action.reassign as { to: string } | undefined;
  return r ? `${what} to hand over to ${r.to}` : `${what} to revoke`;
}

/**
 * A selected identity's revocation: like any leaver's, but a target that cannot be reached does not fail it. The
 * step waits, says why, and tries again (10 s, then doubling up to 15 min) until the target answers.
 */
export async function revokeSelected(ctx: KindContext): Promise<void> {
  const { step } = ctx;
  const reach: KindContext = { ...ctx, targets: reachOnce };
  for (let attempts = 1; ; attempts++) {
    const result = await applyAndVerify(reach, { stepId: step.stepId, outcome: 'revoked', desired: { exists: false }, operation: { op: 'revoke' } });
    if (result.ok || !result.transient) {
      delete step.retrying;
      finish(step, result);
      await noteOutcome(ctx, result);
      return;
    }
    const waitMs = retryDelayMs(attempts);
    step.retrying = { reason: `${step.action.system} could not be reached (${result.detail})`, attempts, nextAttemptAt: new Date(Date.now() + waitMs).toISOString() };
    ctx.touch();
    await sleep(waitMs);
  }
}

/** A hand-over: the inventory's owner changes, with its evidence row; the target is not touched. */
export async function reassignSelected(ctx: KindContext): Promise<void> {
  const { step } = ctx;
  const a = step.action;
  const r = a.reassign as { from: string; to: string };
  try {
    const out = await selections.reassignOwner({ ticketKey: ctx.key, stepId: step.stepId, system: a.system, identity: a.identity, from: r.from, to: r.to, eventReceivedAt: step.eventReceivedAt });
    finish(step, { ok: true, verifiedAt: out.verifiedAt, detail: `handed over from ${r.from} to ${r.to} in the inventory; nothing revoked: it still serves its workload` });
  } catch (err) {
    finish(step, { ok: false, detail: failureText(err) });
  }
  await noteOutcome(ctx, step.status === 'verified' ? { ok: true, verifiedAt: step.verifiedAt ?? '', detail: step.detail ?? '' } : { ok: false, detail: step.detail ?? '' });
}

/**
 * What every kind that grants does the same way once its grant is verified: a ttl starts a durable timer, and at
 * its end (or when the change is cancelled) exactly the granted access is taken back, read back and evidenced.
 * Without a ttl there is no cleanup path, and closure stays blocked.
 */
import { condition } from '@temporalio/workflow';
import type { StepState } from '../../src/change';
import type { KindContext } from './kind';
import { applyAndVerify, label } from './step-runner';

/** Starts the expiry clock at the verified grant; no ttl means no cleanup path. */
export function scheduleExpiry(step: StepState, ttlMs: number | undefined): void {
  step.expiry = ttlMs === undefined ? { status: 'none' } : { status: 'scheduled', expiresAt: new Date(Date.now() + ttlMs).toISOString() };
}

/** The sentence a grant's work note ends with. */
export function expiryNote(step: StepState, ttl: string | undefined): string {
  return step.expiry?.expiresAt ? ` Expires ${step.expiry.expiresAt} (ttl ${ttl}).` : ' No ttl: closure stays blocked until a cleanup path exists.';
}

/** Waits on the durable timer (it survives worker restarts); ends early when the change is cancelled and the undo runs instead. */
export async function awaitExpiry(ctx: KindContext, ttlMs: number | undefined, takeBack: () => Promise<void>): Promise<void> {
  const { step } = ctx;
  if (step.expiry?.status !== 'scheduled' || ttlMs === undefined) return;
  const expired = await condition(() => step.expiry?.status !== 'scheduled', ttlMs);
  if (!expired) {
    step.expiry.status = 'running';
    await takeBack();
  }
}

/** Takes back `grants` (the whole account when `dropAccount`), read back and evidenced, and says so on the ticket. */
export async function takeBackGrants(ctx: KindContext, grants: string[], dropAccount: boolean): Promise<void> {
  const { step } = ctx;
  const a = step.action;
  if (!step.expiry) return;
  const result = await applyAndVerify(ctx, {
    stepId: `expiry:${a.actionId}`, outcome: 'expired',
    desired: dropAccount ? { exists: false } : { exists: true, mustNotHave: grants },
    apply: () => ctx.targets.applyExpiry({ system: a.system, identity: a.identity, grants, dropAccount }),
    operation: { op: 'take-back', grants, dropAccount },
  });
  step.expiry.status = result.ok ? 'verified' : 'failed';
  step.expiry.detail = result.detail;
  if (result.ok) step.expiry.verifiedAt = result.verifiedAt;
  await ctx.tickets.postWorkNote({
    ticket: ctx.ref,
    marker: `expiry:${a.actionId}:${step.expiry.status}`,
    text: result.ok ? `Verified expiry: ${label(a)} — ${result.detail}.` : `FAILED expiry: ${label(a)} — ${result.detail}.`,
  });
}

/** Closure: a verified grant blocks until its cleanup path is there and, once it ran, verified. */
export function grantBlocksClosure(step: StepState, what: string): string[] {
  const expiry = step.expiry?.status ?? 'none';
  if (expiry === 'none') return [`${what} has no cleanup path (no ttl)`];
  if (expiry === 'failed') return [`expiry of ${what} failed: ${step.expiry?.detail ?? 'no detail'}`];
  if (expiry === 'running') return [`expiry of ${what} is not verified yet`];
  return [];
}

/** The compensation of a verified grant whose expiry is still scheduled: take it back now. */
export function grantUndo(takeBack: (ctx: KindContext) => Promise<void>) {
  return {
    pending: (step: StepState) => step.expiry?.status === 'scheduled',
    begin(step: StepState) {
      if (step.expiry) step.expiry.status = 'running';
    },
    run: takeBack,
  };
}

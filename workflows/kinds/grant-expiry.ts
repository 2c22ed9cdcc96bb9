/**
 * What every kind that grants does the same way once its grant is verified: a ttl starts a durable timer, and at
 * its end (or when the change is cancelled) exactly the granted access is taken back, read back and evidenced.
 * Standing access the policy allows is owned instead: its owner's leaver and certification end it. Anything else
 * has no cleanup path, and closure stays blocked.
 */
import { condition, patched } from '@temporalio/workflow';
import type { StepState } from '../../src/change';
import type { KindContext } from './kind';
import { applyAndVerify, label } from './step-runner';

/**
 * `until: ticket-closed` ends when the change moves to Review (or closes), whichever comes first, and closure waits
 * for that take-back to be verified. Before this patch it ended only once the ticket had closed, and closure was
 * allowed while the access still existed.
 */
export const TICKET_CLOSED_ENDS_AT_REVIEW = 'ticket-closed-ends-at-review';

/** Phases in which a grant `until: ticket-closed` ends (a cancellation or rejection undoes it as the saga). */
const ENDS_TICKET_SCOPED = new Set(['review', 'closed']);

/** How long a grant lasts: a ttl counted from the verified grant, and/or the ticket's own end, or standing access. */
export interface GrantLifetime {
  ttlMs?: number;
  ttl?: string;
  until?: 'ticket-closed' | 'window-end';
  /** Planned as standing access (src/kinds/grant-policy.ts): neither a ttl nor an `until`, owned. */
  standing?: boolean;
}

/**
 * Starts the expiry clock at the verified grant: at the ttl's end or the change window's end, whichever comes first,
 * or when the ticket moves to Review or closes. Standing access is owned instead. Anything else has no cleanup path.
 */
export function scheduleExpiry(step: StepState, life: GrantLifetime, windowEnd: string | undefined): void {
  const { ttlMs, until } = life;
  if (until === undefined) {
    const owner = step.action.owner;
    if (ttlMs !== undefined) step.expiry = { status: 'scheduled', expiresAt: new Date(Date.now() + ttlMs).toISOString() };
    else if (life.standing && owner !== undefined) step.expiry = { status: 'standing', owner };
    else step.expiry = { status: 'none' };
    return;
  }
  const ends = [ttlMs === undefined ? undefined : Date.now() + ttlMs, until === 'window-end' && windowEnd ? Date.parse(windowEnd) : undefined].filter((t): t is number => t !== undefined);
  if (until === 'window-end' && !windowEnd && ttlMs === undefined) {
    step.expiry = { status: 'none', until, detail: 'it is to end with the change window, but the change has no end date' };
    return;
  }
  // Asked only for a ticket-scoped grant, so that runs with no such grant record no marker.
  const endsAtReview = until === 'ticket-closed' && patched(TICKET_CLOSED_ENDS_AT_REVIEW);
  step.expiry = {
    status: 'scheduled',
    until,
    ...(ends.length > 0 ? { expiresAt: new Date(Math.min(...ends)).toISOString() } : {}),
    ...(endsAtReview ? { endsAtReview } : {}),
  };
}

/** The sentence a grant's work note ends with. */
export function expiryNote(step: StepState, ttl: string | undefined): string {
  const e = step.expiry;
  if (e?.status === 'standing') return ` Standing access owned by ${e.owner ?? 'no one'}: revoked by the owner's leaver, reviewed by certification.`;
  if (e?.until === 'ticket-closed' && e.endsAtReview) {
    return ` Ends when the change moves to Review or closes${e.expiresAt ? `, or at ${e.expiresAt}` : ''}; closure waits until it is taken back and verified.`;
  }
  if (e?.until === 'ticket-closed') return ` Ends when the change closes${e.expiresAt ? ` or at ${e.expiresAt}` : ''}.`;
  if (e?.until === 'window-end' && e.expiresAt) return ` Ends ${e.expiresAt} (the change window's end${ttl ? ` or ttl ${ttl}` : ''}).`;
  if (e?.expiresAt) return ` Expires ${e.expiresAt} (ttl ${ttl}).`;
  return ` No cleanup path: closure stays blocked until one exists${e?.detail ? ` (${e.detail})` : ''}.`;
}

/**
 * Waits on the durable timer (it survives worker restarts), or for the ticket to move to Review or close; ends early
 * when the change is cancelled or rejected and the undo runs instead.
 */
export async function awaitExpiry(ctx: KindContext, ttlMs: number | undefined, takeBack: () => Promise<void>): Promise<void> {
  const { step, state } = ctx;
  if (step.expiry?.status !== 'scheduled') return;
  if (step.expiry.until === undefined) {
    if (ttlMs === undefined) return;
    const expired = await condition(() => step.expiry?.status !== 'scheduled', ttlMs);
    if (!expired) {
      step.expiry.status = 'running';
      await takeBack();
    }
    return;
  }
  const byTicket = step.expiry.until === 'ticket-closed';
  const endsAtReview = step.expiry.endsAtReview === true;
  const ticketEnded = () => (endsAtReview ? ENDS_TICKET_SCOPED.has(state.phase) : state.phase === 'closed');
  const ended = () => step.expiry?.status !== 'scheduled' || (byTicket && ticketEnded());
  const at = step.expiry.expiresAt;
  if (at === undefined) await condition(ended);
  else await condition(ended, Math.max(0, Date.parse(at) - Date.now()));
  if (step.expiry.status === 'scheduled') {
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
  await ctx.note(
    `expiry:${a.actionId}:${step.expiry.status}`,
    result.ok ? `Verified expiry: ${label(a)} — ${result.detail}.` : `FAILED expiry: ${label(a)} — ${result.detail}.`,
  );
}

/**
 * Closure: a verified grant blocks until its cleanup path is there and, once it ran, verified. A ticket-scoped grant
 * (`until: ticket-closed`) blocks until it has been taken back: closing must not leave the access behind.
 */
export function grantBlocksClosure(step: StepState, what: string): string[] {
  const expiry = step.expiry?.status ?? 'none';
  if (expiry === 'none') return [`${what} has no cleanup path (${step.expiry?.detail ?? 'no ttl'})`];
  if (expiry === 'scheduled' && step.expiry?.endsAtReview) {
    return [`${what} lasts until the change leaves Implement: it is taken back when the change moves to Review, and closure waits until that is verified`];
  }
  if (expiry === 'failed') return [`expiry of ${what} failed: ${step.expiry?.detail ?? 'no detail'}`];
  if (expiry === 'running') return [`expiry of ${what} is not verified yet`];
  return [];
}

/** The compensation of a verified grant whose expiry is still scheduled, or of standing access: take it back now. */
export function grantUndo(takeBack: (ctx: KindContext) => Promise<void>) {
  return {
    pending: (step: StepState) => step.expiry?.status === 'scheduled' || step.expiry?.status === 'standing',
    begin(step: StepState) {
      if (step.expiry) step.expiry.status = 'running';
    },
    run: takeBack,
  };
}

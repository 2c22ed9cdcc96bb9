import { z } from 'zod';
import type { ClosureView } from '../change/closure';
import { isFinal } from '../change/ticket';
import type { ClosureVerdictStore } from '../closure/verdict-store';
import { AppError } from '../errors';
import { ticketSourceNames } from '../itsm/registry';
import { pageLimit, queryIssues } from './paging';

/** Where a change stands at the gate, as the dashboard groups changes. */
export const GATE_STATES = ['waiting-authorization', 'running', 'blocked', 'allowed', 'closed'] as const;
export type GateState = (typeof GATE_STATES)[number];

/** Steps that stop the change until a person acts: closure names why in its reasons. */
const STOPPED = new Set(['failed', 'blocked', 'rejected']);
const WAITING = new Set(['waiting-authorization', 'waiting-approval']);

/**
 * A published closure view's gate state. Closed first (a final ticket is history whatever its steps did), then
 * allowed, then blocked (a step that needs a person), then waiting (not yet authorized, or a privileged grant waits for
 * a decision); anything else is running.
 */
export function gateState(view: ClosureView): GateState {
  if (view.phase && isFinal(view.phase)) return 'closed';
  if (view.allowed) return 'allowed';
  if (view.steps.some((s) => STOPPED.has(s.status))) return 'blocked';
  if (view.phase !== 'implement' || view.steps.some((s) => WAITING.has(s.status))) return 'waiting-authorization';
  return 'running';
}

export const changeListQuery = z
  .object({
    source: z.string().refine((s) => ticketSourceNames().includes(s), { message: `must be a registered ticket source (${ticketSourceNames().join(', ')})` }).optional(),
    system: z.string().min(1).max(100).optional(),
    state: z.enum(GATE_STATES, { errorMap: () => ({ message: `must be one of ${GATE_STATES.join(', ')}` }) }).optional(),
    limit: pageLimit,
  })
  .strict();

/**
 * `GET /api/changes`: the newest `limit` changes (default 100) by their newest published closure view, each with its
 * gate state and the reasons closure gives; filtered by source, by a system one of its steps acts on, and by state.
 */
export async function listChanges(deps: { verdicts: ClosureVerdictStore }, query: unknown) {
  const parsed = changeListQuery.safeParse(query ?? {});
  if (!parsed.success) throw new AppError(400, 'VALIDATION_FAILED', 'the change query is invalid', queryIssues(parsed.error, ['source', 'system', 'state', 'limit']));
  const { source, system, state, limit = 100 } = parsed.data;
  const latest = await deps.verdicts.listLatest({ ...(source ? { source } : {}), ...(system ? { system } : {}), limit });
  const items = latest
    // The system filter is checked again on the genuine view: the query matched the newest row, which may not be it.
    .filter((v) => !system || v.view.steps.some((s) => s.system === system))
    .map((v) => ({
      source: v.source,
      ticket: v.ticket,
      state: gateState(v.view),
      ticketState: v.view.ticketState,
      phase: v.view.phase ?? null,
      reasons: v.view.reasons,
      systems: [...new Set(v.view.steps.map((s) => s.system))],
      kinds: [...new Set(v.view.steps.map((s) => s.kind))],
      steps: v.view.steps.length,
      updatedAt: v.publishedAt,
    }))
    .filter((item) => !state || item.state === state);
  return { items, limit };
}

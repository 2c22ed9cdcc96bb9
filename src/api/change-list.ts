import { z } from 'zod';
import type { ClosureView } from '../change/closure';
import { isFinal } from '../change/ticket';
import type { ClosureVerdictStore } from '../closure/verdict-store';
import { AppError } from '../errors';
import { ticketSourceNames } from '../itsm/registry';
import { kindNames } from '../kinds/registry';
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

/** Filters both listings of changes take: which source, a system one of its steps acts on, an action kind it carries. */
const changeFilters = {
  source: z.string().refine((s) => ticketSourceNames().includes(s), { message: `must be a registered ticket source (${ticketSourceNames().join(', ')})` }).optional(),
  system: z.string().min(1).max(100).optional(),
  kind: z.string().refine((k) => kindNames().includes(k), { message: `must be an action kind (${kindNames().join(', ')})` }).optional(),
};

export const changeListQuery = z
  .object({
    ...changeFilters,
    state: z.enum(GATE_STATES, { errorMap: () => ({ message: `must be one of ${GATE_STATES.join(', ')}` }) }).optional(),
    limit: pageLimit,
  })
  .strict();

type ChangeFilter = { source?: string; system?: string; kind?: string };

/** The changes of the newest published closure views that match, as the dashboard shows them. */
async function summaries(deps: { verdicts: ClosureVerdictStore }, filter: ChangeFilter, limit?: number) {
  const { source, system, kind } = filter;
  const latest = await deps.verdicts.listLatest({ ...(source ? { source } : {}), ...(system ? { system } : {}), ...(kind ? { kind } : {}), ...(limit !== undefined ? { limit } : {}) });
  return (
    latest
      // System and kind are checked again on the genuine view: the query matched any row of the ticket, which may not be it.
      .filter((v) => (!system || v.view.steps.some((s) => s.system === system)) && (!kind || v.view.steps.some((s) => s.kind === kind)))
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
        receivedAt: v.receivedAt,
        updatedAt: v.publishedAt,
      }))
  );
}

/**
 * `GET /api/changes`: the newest `limit` changes (default 100) by their newest published closure view, each with its
 * gate state and the reasons closure gives; filtered by source, by a system one of its steps acts on, by an action
 * kind it carries, and by state.
 */
export async function listChanges(deps: { verdicts: ClosureVerdictStore }, query: unknown) {
  const parsed = changeListQuery.safeParse(query ?? {});
  if (!parsed.success) throw new AppError(400, 'VALIDATION_FAILED', 'the change query is invalid', queryIssues(parsed.error, ['source', 'system', 'kind', 'state', 'limit']));
  const { state, limit = 100, ...filter } = parsed.data;
  const items = (await summaries(deps, filter, limit)).filter((item) => !state || item.state === state);
  return { items, limit };
}

const DAY_MS = 86_400_000;

/** Age brackets of open changes, in whole days since the gateway first received the ticket. */
export const AGE_BRACKETS = [
  { bracket: 'under-1d', label: '< 1 d', minDays: 0, maxDays: 0 },
  { bracket: '1-5d', label: '1–5 d', minDays: 1, maxDays: 5 },
  { bracket: '6-30d', label: '6–30 d', minDays: 6, maxDays: 30 },
  { bracket: '31-90d', label: '31–90 d', minDays: 31, maxDays: 90 },
  { bracket: 'over-90d', label: '> 90 d', minDays: 91, maxDays: null },
] as const;

export const changeAgeingQuery = z
  .object({ ...changeFilters, limit: pageLimit })
  .strict();

/**
 * `GET /api/changes/ageing`: every open change (not closed or cancelled) counted into its age bracket, the age being
 * whole days since the gateway first received the ticket (its first accepted delivery) — the time the gateway has
 * known of it, which a ticket's own created date in its source may precede. Each bracket lists up to `limit` (default
 * 100) of its tickets, oldest first; `count` counts them all.
 */
export async function changeAgeing(deps: { verdicts: ClosureVerdictStore }, query: unknown, now = new Date()) {
  const parsed = changeAgeingQuery.safeParse(query ?? {});
  if (!parsed.success) throw new AppError(400, 'VALIDATION_FAILED', 'the ageing query is invalid', queryIssues(parsed.error, ['source', 'system', 'kind', 'limit']));
  const { limit = 100, ...filter } = parsed.data;
  const open = (await summaries(deps, filter))
    .filter((c) => c.state !== 'closed')
    .map((c) => ({ source: c.source, ticket: c.ticket, state: c.state, kinds: c.kinds, receivedAt: c.receivedAt, ageDays: Math.max(0, Math.floor((now.getTime() - Date.parse(c.receivedAt)) / DAY_MS)) }))
    .sort((a, b) => b.ageDays - a.ageDays || a.receivedAt.localeCompare(b.receivedAt));
  const brackets = AGE_BRACKETS.map((b) => {
    const inBracket = open.filter((c) => c.ageDays >= b.minDays && (b.maxDays === null || c.ageDays <= b.maxDays));
    return { ...b, count: inBracket.length, tickets: inBracket.slice(0, limit) };
  });
  return { basis: 'first-delivery' as const, at: now.toISOString(), brackets, limit };
}

import { z } from 'zod';
import type { Principal } from '../auth/principal';
import { workflowIdFor } from '../change/ticket';
import { AppError, formatPath } from '../errors';
import { EXCEPTION_DECISIONS, EXCEPTION_ID } from '../change/exception';
import type { ExceptionStore, LedgerException } from '../exceptions/exception-store';
import type { Policy } from '../policy/policy';
import type { ChangeWorkflows } from '../temporal/temporal-client';
import type { ExceptionDecisionRequest, ExceptionDecisionResult } from '../../workflows/exceptions';
import { decisionRefusal } from './decisions';
import { pageCursor, pageLimit, queryIssues } from './paging';

const FILTERS = ['status', 'source', 'system', 'overdue', 'limit', 'cursor'];
const STATUSES = ['open', 'escalated', 'accepted', 'revoking', 'revoked', 'revoke-failed', 'undecided', 'decided'] as const;

export const exceptionListQuery = z
  .object({
    status: z.enum(STATUSES, { errorMap: () => ({ message: `must be one of ${STATUSES.join(', ')}` }) }).optional(),
    source: z.string().regex(/^[a-z][a-z0-9-]{0,19}$/, 'must be a ticket source name such as servicenow').optional(),
    system: z.string().min(1).max(100).optional(),
    overdue: z.enum(['true', 'false'], { errorMap: () => ({ message: "must be 'true' or 'false'" }) }).transform((v) => v === 'true').optional(),
    limit: pageLimit,
    cursor: pageCursor(EXCEPTION_ID),
  })
  .strict();

export const exceptionDecisionBody = z
  .object({
    decision: z.enum(EXCEPTION_DECISIONS, { errorMap: () => ({ message: "must be 'accept' or 'revoke'" }) }),
    // Its presence and content are the workflow's to judge (the update's validator), so every refusal has one source.
    justification: z.string().max(10_000).optional(),
  })
  .strict();

/** A queue item: the ledger row, its time left, and the identity's state on its target now. */
export interface QueueItem extends LedgerException {
  overdue: boolean;
  /** Milliseconds to the deadline (negative once past); null once decided. */
  timeLeftMs: number | null;
  current: { exists: boolean; locked?: boolean; grants: string[]; stillGranted: string[] } | { error: string };
}

/**
 * `GET /api/exceptions`: the security reviewers' queue, soonest deadline first (so what is overdue leads), each item
 * with what was granted, by whom, its time left and the identity as its target shows it now (read by the worker,
 * which holds the credentials; the API holds none).
 */
export async function listExceptions(deps: { exceptions: ExceptionStore; workflows: ChangeWorkflows }, query: unknown, now = new Date()) {
  const parsed = exceptionListQuery.safeParse(query ?? {});
  if (!parsed.success) throw new AppError(400, 'VALIDATION_FAILED', 'the exceptions query is invalid', queryIssues(parsed.error, FILTERS));
  const { cursor, limit = 50, ...filters } = parsed.data;
  const page = await deps.exceptions.list({ ...filters, ...(cursor ? { afterId: cursor } : {}), limit: Math.min(limit, 200), now });
  const current = await readBack(deps.workflows, page.items);
  const items: QueueItem[] = page.items.map((item, i) => {
    const undecided = item.status === 'open' || item.status === 'escalated';
    const left = Date.parse(item.deadline) - now.getTime();
    const seen = current[i] ?? { error: 'not read' };
    return {
      ...item,
      overdue: undecided && left < 0,
      timeLeftMs: undecided ? left : null,
      current: 'error' in seen ? seen : { ...seen, stillGranted: item.grants.filter((g) => seen.exists && seen.grants.includes(g)) },
    };
  });
  return { items, nextCursor: page.nextCursor, limit: Math.min(limit, 200) };
}

async function readBack(workflows: ChangeWorkflows, items: LedgerException[]) {
  if (items.length === 0) return [];
  try {
    return await workflows.readBackIdentities(items.map((i) => ({ system: i.system, identity: i.identity as never })));
  } catch (err) {
    // The queue still answers without its read-back; each item says why it has none.
    return items.map(() => ({ error: `the worker did not read the targets back: ${(err as Error).message.slice(0, 200)}` }));
  }
}

/**
 * `POST /api/exceptions/{id}/decision`: a security reviewer accepts or revokes an exception. The ticket's workflow
 * decides whether the decision may be taken (a Temporal update and its validator: role, the change's requester and
 * implementer, decided already, justification) and records it as evidence naming the principal before it counts.
 */
export async function decideException(
  deps: { exceptions: ExceptionStore; workflows: ChangeWorkflows; policy: Policy },
  id: string,
  body: unknown,
  principal: Principal,
): Promise<ExceptionDecisionResult> {
  const requestedAt = new Date().toISOString();
  if (!EXCEPTION_ID.test(id)) throw new AppError(400, 'VALIDATION_FAILED', 'invalid exception id', [{ path: 'path.id', message: 'must be an exception id the queue lists, e.g. EXC-0123456789ABCDEF' }]);
  const parsed = exceptionDecisionBody.safeParse(body ?? {});
  if (!parsed.success) {
    throw new AppError(400, 'VALIDATION_FAILED', 'the decision is invalid', parsed.error.issues.map((i) => ({ path: formatPath(i.path) || '(body)', message: i.message })));
  }
  const row = await deps.exceptions.find(id);
  if (!row) throw new AppError(404, 'NOT_FOUND', `no emergency exception ${id}`);
  const input: ExceptionDecisionRequest = {
    exceptionId: id,
    decision: parsed.data.decision,
    ...(parsed.data.justification !== undefined ? { justification: parsed.data.justification } : {}),
    principal: { actor: principal.actor, roles: [...principal.roles], ticketUsers: deps.policy.ticketUsersOf(principal.actor, row.source) },
    requestedAt,
  };
  try {
    const handle = deps.workflows.client.workflow.getHandle(workflowIdFor(row.source, row.ticket));
    return await handle.executeUpdate<ExceptionDecisionResult, [ExceptionDecisionRequest]>('decideException', { args: [input] });
  } catch (err) {
    // The workflow lives until every exception is decided and carried out: one that has ended takes no decision.
    if (err instanceof Error && /already completed|not found/i.test(err.message)) {
      const decided = row.status !== 'open' && row.status !== 'escalated';
      throw new AppError(409, 'CONFLICT', decided ? `emergency exception ${id} is already decided` : `the workflow of ${row.source} ${row.ticket} has ended: exception ${id} (${row.status}) cannot be decided through it`, [], { cause: err });
    }
    throw decisionRefusal(err) ?? err;
  }
}

import { WorkflowNotFoundError } from '@temporalio/client';
import { z } from 'zod';
import type { Principal } from '../auth/principal';
import { CERTIFICATION_ID, CERTIFICATION_STATUSES, DECIDE_CERTIFICATION, certificationWorkflowId } from '../certification/certification';
import type { CertificationStore } from '../certification/certification-store';
import { AppError, formatPath } from '../errors';
import { identityOfRow, type InventoryItem } from '../inventory/inventory-store';
import type { Logger } from '../logger';
import type { Policy } from '../policy/policy';
import type { ChangeWorkflows } from '../temporal/temporal-client';
import type { CertificationDecisionInput, CertificationDecisionResult } from '../../workflows/certification-workflow';
import { decisionRefusal } from './decisions';
import { pageCursor, pageLimit, queryIssues } from './paging';

export const certificationListQuery = z
  .object({
    status: z.enum(CERTIFICATION_STATUSES, { errorMap: () => ({ message: `must be one of ${CERTIFICATION_STATUSES.join(', ')}` }) }).optional(),
    system: z.string().min(1).max(100).optional(),
    reviewer: z.string().regex(/^(role|group|user):.{1,255}$/s, "must be 'role:<role>', 'group:<group>' or 'user:<directory user>'").optional(),
    overdue: z.enum(['true', 'false'], { errorMap: () => ({ message: "must be 'true' or 'false'" }) }).transform((v) => v === 'true').optional(),
    limit: pageLimit,
    cursor: pageCursor(CERTIFICATION_ID),
  })
  .strict();

/** `GET /api/certifications`: certification items, filtered (status, system, reviewer, overdue) and paged by item id. */
export async function listCertifications(deps: { certifications: CertificationStore }, query: unknown) {
  const parsed = certificationListQuery.safeParse(query ?? {});
  if (!parsed.success) {
    throw new AppError(400, 'VALIDATION_FAILED', 'the certification query is invalid', queryIssues(parsed.error, ['status', 'system', 'reviewer', 'overdue', 'limit', 'cursor']));
  }
  const { cursor, limit = 100, ...filters } = parsed.data;
  return { ...(await deps.certifications.list({ ...filters, ...(cursor ? { afterId: cursor } : {}), limit })), limit };
}

export const certificationDecisionBody = z
  .object({
    decisions: z
      .array(z.object({ grant: z.string().min(1).max(300), decision: z.enum(['keep', 'revoke'], { errorMap: () => ({ message: "must be 'keep' or 'revoke'" }) }) }).strict())
      .max(500),
    // Its presence and content are the workflow's to judge (the update's validator), so every refusal has one source.
    justification: z.string().max(10_000).optional(),
  })
  .strict();

/**
 * `POST /api/certifications/{id}/decision`: the item's reviewer decides every grant of it at once, keep or revoke,
 * with a justification. The item's workflow decides whether the decision may be taken (a Temporal update and its
 * validator) and records it as evidence naming the principal before it counts.
 */
export async function decideCertification(
  deps: { workflows: ChangeWorkflows; certifications: CertificationStore; policy: Policy },
  id: string,
  body: unknown,
  principal: Principal,
): Promise<CertificationDecisionResult> {
  const requestedAt = new Date().toISOString();
  if (!CERTIFICATION_ID.test(id)) throw new AppError(400, 'VALIDATION_FAILED', 'invalid certification id', [{ path: 'path.id', message: 'must be the id GET /api/certifications lists' }]);
  const parsed = certificationDecisionBody.safeParse(body ?? {});
  if (!parsed.success) {
    throw new AppError(400, 'VALIDATION_FAILED', 'the decision is invalid', parsed.error.issues.map((i) => ({ path: formatPath(i.path) || '(body)', message: i.message })));
  }
  const item = await deps.certifications.get(id);
  if (!item) throw new AppError(404, 'NOT_FOUND', `no certification item ${id}`);
  const input: CertificationDecisionInput = {
    decisions: parsed.data.decisions,
    ...(parsed.data.justification !== undefined ? { justification: parsed.data.justification } : {}),
    principal: {
      actor: principal.actor,
      roles: [...principal.roles],
      directoryUsers: deps.policy.ticketUsersOf(principal.actor, 'directory'),
      groups: deps.policy.ticketUsersOf(principal.actor, 'group'),
    },
    requestedAt,
  };
  try {
    return await deps.workflows.client.workflow.getHandle(certificationWorkflowId(id)).executeUpdate<CertificationDecisionResult, [CertificationDecisionInput]>(DECIDE_CERTIFICATION, { args: [input] });
  } catch (err) {
    // A decided item's workflow has ended (its revocation change opened): it takes no second decision.
    if (err instanceof WorkflowNotFoundError || (err instanceof Error && /already completed/i.test(err.message))) {
      throw new AppError(409, 'CONFLICT', `certification ${id} is already decided (${item.status})`, [], { cause: err });
    }
    throw decisionRefusal(err) ?? err;
  }
}

/**
 * An operator named an identity's owner (PATCH /api/inventory/{id}): when the policy's `owner-change` trigger is on, the
 * identity's access is certified by the reviewer the rule names for its new owner. The evidence row that set the owner
 * is the item's reference. The owner is set (committed) before this runs: a trigger that fails is answered as
 * `certification: {error}` beside it, never as a failure of the change that happened.
 */
export async function certifyOwnerChange(
  deps: { workflows: ChangeWorkflows; policy: Policy; log: Logger },
  identity: InventoryItem | null,
  evidence: { ticketKey: string; seq: number },
  body: unknown,
): Promise<{ certification: string | { error: string } } | Record<string, never>> {
  const ownerSet = typeof body === 'object' && body !== null && 'owner' in body;
  if (!identity || !ownerSet || !deps.policy.certifies('owner-change')) return {};
  try {
    const { id } = await deps.workflows.certify({
      trigger: 'owner-change', reference: `${evidence.ticketKey}#${evidence.seq}`, system: identity.system, identity: identityOfRow(identity),
      at: new Date().toISOString(), detail: `owner set to ${identity.owner ?? 'no one'}`,
    });
    return { certification: id };
  } catch (err) {
    deps.log.warn('owner-change certification could not be opened', { identity: identity.id, error: err instanceof Error ? err.message : String(err) });
    return { certification: { error: 'the certification item could not be opened (the workflow service did not take it); set the owner again to retry' } };
  }
}

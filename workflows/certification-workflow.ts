/**
 * One certification item from its opening to its outcome: the reviewer decides grant by grant (a Temporal update whose
 * validator refuses, with the reason, what must not be decided), or the policy's default applies at the due date.
 * Every decision is evidence before it counts; revocations run as a standard change (the activity opens it).
 */
import { ApplicationFailure, allHandlersFinished, condition, defineQuery, defineUpdate, proxyActivities, setHandler } from '@temporalio/workflow';
import type { CertificationActivities } from '../activities';
import type { Actor } from '../src/auth/principal';
import type { CertificationItem, CertificationRequest, CertificationStatus, GrantDecision } from '../src/certification/certification';

const certifications = proxyActivities<CertificationActivities>({
  startToCloseTimeout: '2 minutes',
  // The target (read-back) or the ticket system (the revocation change) may be down a while; a change opened before
  // its answer was lost is found again by its correlation id.
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10 },
});

export interface CertificationWorkflowInput {
  id: string;
  request: CertificationRequest;
}

export interface CertificationDecisionInput {
  decisions: GrantDecision[];
  justification?: string;
  /**
   * The caller as the API authenticated it, with the directory users and groups the policy's people mapping says it
   * is (sources `directory` and `group`).
   */
  principal: { actor: Actor; roles: string[]; directoryUsers: string[]; groups: string[] };
  requestedAt: string;
}

export interface CertificationDecisionResult {
  id: string;
  status: CertificationStatus;
  evidenceHash: string;
}

/** The name is DECIDE_CERTIFICATION (src/certification/certification.ts), which workflows may not import as a value. */
export const decideCertificationUpdate = defineUpdate<CertificationDecisionResult, [CertificationDecisionInput]>('decideCertification');
export const certificationQuery = defineQuery<CertificationItem>('certification');

/** Failure types the API maps to status codes (src/api/decisions.ts): 403, 409, 400. */
type Refusal = 'Forbidden' | 'Conflict' | 'BadRequest';
const refuse = (type: Refusal, message: string) => ApplicationFailure.create({ type, message, nonRetryable: true });

function refusal(item: CertificationItem, input: CertificationDecisionInput, deciding: boolean): ApplicationFailure | undefined {
  const { actor, roles, directoryUsers, groups } = input.principal;
  const r = item.reviewer;
  const isReviewer = r.kind === 'role' ? roles.includes(r.role) : r.kind === 'group' ? groups.includes(r.group) : directoryUsers.includes(r.user);
  if (!isReviewer) {
    const who = r.kind === 'role' ? `a principal with the role ${r.role}` : r.kind === 'group' ? `a member of the group ${r.group}` : `${r.user}, the owner's manager`;
    return refuse('Forbidden', `only ${who} reviews this item`);
  }
  const isMe = (name: string | null) => name !== null && (name === actor.name || name === actor.id || directoryUsers.includes(name));
  if (isMe(item.owner)) return refuse('Forbidden', 'the owner of the identity may not certify its access (self-certification)');
  if (isMe(item.name)) return refuse('Forbidden', 'an identity may not certify its own access (self-certification)');
  if (item.status !== 'open' || deciding) return refuse('Conflict', `certification ${item.id} is ${deciding ? 'being decided' : `already decided (${item.status})`}`);
  if (typeof input.justification !== 'string' || input.justification.trim().length === 0) return refuse('BadRequest', 'justification: a decision needs one');
  if (input.justification.length > 2000) return refuse('BadRequest', 'justification: at most 2000 characters');
  const named = new Set<string>();
  for (const [i, d] of input.decisions.entries()) {
    if (!item.grants.includes(d.grant)) return refuse('BadRequest', `decisions.${i}.grant: '${d.grant.slice(0, 300)}' is not a grant of this item (its grants: ${item.grants.join(', ') || 'none'})`);
    if (named.has(d.grant)) return refuse('BadRequest', `decisions.${i}.grant: '${d.grant.slice(0, 300)}' is decided twice`);
    named.add(d.grant);
  }
  const missing = item.grants.filter((g) => !named.has(g));
  if (missing.length > 0) return refuse('BadRequest', `decisions: every grant of the item needs a decision; missing: ${missing.join(', ')}`);
  return undefined;
}

export async function certificationWorkflow(input: CertificationWorkflowInput): Promise<CertificationItem> {
  const item = await certifications.openCertification(input);
  let deciding = false;
  setHandler(certificationQuery, () => item);
  setHandler(
    decideCertificationUpdate,
    async (d) => {
      // Validated a moment ago, but another decision may have been accepted in between.
      const refused = refusal(item, d, deciding);
      if (refused) throw refused;
      deciding = true;
      try {
        const status: CertificationStatus = d.decisions.some((x) => x.decision === 'revoke') ? 'revoking' : 'certified';
        const justification = (d.justification ?? '').trim();
        const recorded = await certifications.recordCertificationDecision({ id: item.id, status, decisions: d.decisions, justification, principal: d.principal.actor, requestedAt: d.requestedAt });
        Object.assign(item, { status, decisions: d.decisions, decidedBy: d.principal.actor, decidedAt: recorded.recordedAt, justification });
        return { id: item.id, status, evidenceHash: recorded.evidenceHash };
      } finally {
        deciding = false;
      }
    },
    {
      validator: (d) => {
        const refused = refusal(item, d, deciding);
        if (refused) throw refused;
      },
    },
  );

  if (item.status === 'open') {
    const decided = await condition(() => item.status !== 'open', Math.max(1, Date.parse(item.dueAt) - Date.now()));
    // A decision being recorded when the due date passed is let finish: the person's decision, not the policy's.
    if (!decided) await condition(() => !deciding);
    if (item.status === 'open') {
      const decisions = item.grants.map((grant) => ({ grant, decision: item.onTimeout === 'revoke' ? ('revoke' as const) : ('keep' as const) }));
      const status: CertificationStatus = decisions.some((x) => x.decision === 'revoke') ? 'revoking' : 'escalated';
      const justification = item.onTimeout === 'revoke'
        ? `no decision by ${item.dueAt}: the policy revokes (onTimeout revoke)`
        : `no decision by ${item.dueAt}: the policy keeps the access and escalates (onTimeout keep-and-escalate)`;
      const recorded = await certifications.recordCertificationDecision({ id: item.id, status, decisions, justification, requestedAt: item.dueAt });
      Object.assign(item, { status, decisions, decidedBy: null, decidedAt: recorded.recordedAt, justification });
    }
  }
  if (item.status === 'revoking' && item.change === null) item.change = (await certifications.openCertificationRevocation({ id: item.id })).change;
  await condition(allHandlersFinished);
  return item;
}

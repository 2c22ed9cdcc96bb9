/**
 * One certification item from its opening to its outcome: the reviewer decides grant by grant (a Temporal update whose
 * validator refuses, with the reason, what must not be decided), or the policy's default applies at the due date.
 * Every decision is evidence before it counts; revocations run as a standard change (the activity opens it).
 */
import { type ApplicationFailure, allHandlersFinished, condition, defineQuery, defineUpdate, setHandler } from '@temporalio/workflow';
import type { Actor } from '../src/auth/principal';
import type { CertificationItem, CertificationRequest, CertificationStatus, GrantDecision } from '../src/certification/certification';
import { certifications } from './activity-proxies';
import { justificationRefusal, refuse } from './refusals';

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

/** Undecided: waiting for its reviewer, before the due date (open) or after the policy escalated it (escalated). */
const undecided = (status: CertificationStatus) => status === 'open' || status === 'escalated';

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
  if (deciding) return refuse('Conflict', `certification ${item.id} is being decided`);
  if (!undecided(item.status)) return refuse('Conflict', `certification ${item.id} is already decided (${item.status})`);
  const badJustification = justificationRefusal(input.justification);
  if (badJustification) return badJustification;
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
  // The handlers are set before the item is opened: its row (which GET lists) lands before the opening activity's
  // answer does, and a decision sent in between waits for the item instead of finding no handler.
  const opening: { item?: CertificationItem } = {};
  // One decision at a time, a person's or the policy's: set before either is recorded, so the other is refused (409).
  let deciding = false;
  /** The decision as the item's row holds it (the first recorded, should two ever reach the store). */
  const adopt = (d: Pick<CertificationItem, 'status' | 'decisions' | 'decidedBy' | 'decidedAt' | 'justification'>) => Object.assign(opening.item as CertificationItem, d);
  setHandler(certificationQuery, () => opening.item as CertificationItem);
  setHandler(
    decideCertificationUpdate,
    async (d) => {
      await condition(() => opening.item !== undefined);
      const item = opening.item as CertificationItem;
      // Validated a moment ago (or not at all, while the item was being opened), and another decision may have been
      // accepted in between.
      const refused = refusal(item, d, deciding);
      if (refused) throw refused;
      deciding = true;
      try {
        const status: CertificationStatus = d.decisions.some((x) => x.decision === 'revoke') ? 'revoking' : 'certified';
        const justification = (d.justification ?? '').trim();
        const recorded = await certifications.recordCertificationDecision({ id: item.id, status, decisions: d.decisions, justification, principal: d.principal.actor, requestedAt: d.requestedAt });
        adopt(recorded.item);
        return { id: item.id, status: item.status, evidenceHash: recorded.evidenceHash };
      } finally {
        deciding = false;
      }
    },
    {
      validator: (d) => {
        if (!opening.item) return;
        const refused = refusal(opening.item, d, deciding);
        if (refused) throw refused;
      },
    },
  );
  const item = await certifications.openCertification(input);
  opening.item = item;

  const decided = () => !undecided(item.status) && !deciding;
  while (!decided()) {
    // Escalated: kept, and waiting for its reviewer with no deadline.
    if (item.status === 'escalated') {
      await condition(decided);
      break;
    }
    if (await condition(decided, Math.max(1, Date.parse(item.dueAt) - Date.now()))) break;
    // A person's decision in flight at the due date counts once recorded; if its record is refused the policy decides.
    if (deciding) {
      await condition(() => !deciding);
      continue;
    }
    deciding = true;
    try {
      if (item.onTimeout === 'revoke') {
        const decisions = item.grants.map((grant) => ({ grant, decision: 'revoke' as const }));
        const justification = `no decision by ${item.dueAt}: the policy revokes (onTimeout revoke)`;
        adopt((await certifications.recordCertificationDecision({ id: item.id, status: 'revoking', decisions, justification, requestedAt: item.dueAt })).item);
      } else {
        adopt(await certifications.escalateCertification({ id: item.id }));
      }
    } finally {
      deciding = false;
    }
  }
  if (item.status === 'revoking' && item.change === null) adopt(await certifications.openCertificationRevocation({ id: item.id }));
  await condition(allHandlersFinished);
  return item;
}

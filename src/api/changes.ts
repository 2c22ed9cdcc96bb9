import type { EvidenceStore } from '../evidence/evidence-store';
import { AppError } from '../errors';
import type { ChangeWorkflows } from '../temporal/temporal-client';
import { ticketKey } from '../../workflows/change-types';
import { closureVerdict } from '../../workflows/closure';

const NUMBER = /^[A-Z]{2,8}\d{4,12}$/;

export function checkTicketNumber(number: string): string {
  if (!NUMBER.test(number)) {
    throw new AppError(400, 'VALIDATION_FAILED', 'invalid ticket number', [{ path: 'path.number', message: 'must look like CHG0030001' }]);
  }
  return number;
}

/**
 * The closure gate as an endpoint: the workflow's plan and step states, cross-checked against the evidence
 * chain — a step counts only if its verified evidence row exists and the chain is intact.
 */
export async function closureCheck(deps: { workflows: ChangeWorkflows; evidence: EvidenceStore }, number: string) {
  const state = await deps.workflows.status('servicenow', checkTicketNumber(number));
  if (!state) throw new AppError(404, 'NOT_FOUND', `changegate has not received change ${number}`);
  const key = ticketKey('servicenow', number);
  const verdict = closureVerdict(state);
  const { rows, chain } = await deps.evidence.listVerified(key);
  const reasons = [...verdict.reasons];
  const proven = new Set(rows.filter((r) => r.verified).map((r) => r.stepId));
  for (const step of state.steps) {
    if (step.status === 'verified' && !proven.has(step.stepId)) reasons.push(`${step.stepId} has no verified evidence row`);
  }
  if (!chain.valid) reasons.push(`evidence chain is broken at row ${chain.brokenAt?.seq}: ${chain.brokenAt?.reason}`);
  return {
    ticket: number,
    allowed: reasons.length === 0,
    reasons,
    ticketState: state.state,
    steps: state.steps.map((s) => ({
      stepId: s.stepId,
      kind: s.action.kind,
      system: s.action.system,
      identity: s.action.identity,
      status: s.status,
      detail: s.detail,
      verifiedAt: s.verifiedAt,
      cleanup: s.action.kind === 'joiner' ? (s.expiry ?? { status: 'none' }) : undefined,
    })),
    evidence: { rows: rows.length, chainValid: chain.valid },
  };
}

export async function evidenceBundle(deps: { evidence: EvidenceStore }, number: string) {
  const key = ticketKey('servicenow', checkTicketNumber(number));
  const { rows, chain } = await deps.evidence.listVerified(key);
  if (rows.length === 0) throw new AppError(404, 'NOT_FOUND', `no evidence recorded for ${number}`);
  return { ticket: number, chain, rows };
}

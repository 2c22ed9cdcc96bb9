import { closureVerdict } from '../change/closure';
import { ticketKey } from '../change/ticket';
import type { EvidenceStore } from '../evidence/evidence-store';
import { AppError } from '../errors';
import type { TicketSource } from '../itsm/source';
import type { ChangeWorkflows } from '../temporal/temporal-client';

export function checkTicketKey(source: TicketSource, key: string): string {
  if (!source.keyPattern.test(key)) {
    throw new AppError(400, 'VALIDATION_FAILED', 'invalid ticket number', [{ path: 'path.number', message: `must look like ${source.keyExample}` }]);
  }
  return key;
}

/**
 * The closure gate as an endpoint: the workflow's plan and step states, cross-checked against the evidence
 * chain — a step counts only if its verified evidence row exists and the chain is intact.
 */
export async function closureCheck(deps: { workflows: ChangeWorkflows; evidence: EvidenceStore }, source: TicketSource, key: string) {
  const state = await deps.workflows.status(source.name, checkTicketKey(source, key));
  if (!state) throw new AppError(404, 'NOT_FOUND', `changegate has not received change ${key}`);
  const verdict = closureVerdict(state);
  const { rows, chain } = await deps.evidence.listVerified(ticketKey(source.name, key));
  const reasons = [...verdict.reasons];
  const proven = new Set(rows.filter((r) => r.verified).map((r) => r.stepId));
  for (const step of state.steps) {
    if (step.status === 'verified' && !proven.has(step.stepId)) reasons.push(`${step.stepId} has no verified evidence row`);
  }
  if (!chain.valid) reasons.push(`evidence chain is broken at row ${chain.brokenAt?.seq}: ${chain.brokenAt?.reason}`);
  return {
    ticket: key,
    allowed: reasons.length === 0,
    reasons,
    ticketState: state.sourceState,
    phase: state.phase,
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

export async function evidenceBundle(deps: { evidence: EvidenceStore }, source: TicketSource, key: string) {
  const { rows, chain } = await deps.evidence.listVerified(ticketKey(source.name, checkTicketKey(source, key)));
  if (rows.length === 0) throw new AppError(404, 'NOT_FOUND', `no evidence recorded for ${key}`);
  return { ticket: key, chain, rows };
}

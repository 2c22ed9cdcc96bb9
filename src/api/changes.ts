import type { EvidenceStore } from '../evidence/evidence-store';
import { AppError } from '../errors';
import type { ChangeWorkflows } from '../temporal/temporal-client';
import { ticketKey } from '../../workflows/change-types';
import { type ClosureView, closureView } from '../../workflows/closure';
import type { ClosureVerdictStore } from '../closure/verdict-store';

const NUMBER = /^[A-Z]{2,8}\d{4,12}$/;

export function checkTicketNumber(number: string): string {
  if (!NUMBER.test(number)) {
    throw new AppError(400, 'VALIDATION_FAILED', 'invalid ticket number', [{ path: 'path.number', message: 'must look like CHG0030001' }]);
  }
  return number;
}

/**
 * The closure gate as an endpoint: the workflow's step states, cross-checked against the evidence chain — a step
 * counts only if its verified evidence row exists and the chain is intact. The step states come from the view the
 * workflow last published (closure_verdicts), not from a query that would replay it; a delivery the workflow has not
 * yet evaluated keeps the answer "not allowed". A ticket that has never published (a workflow started before the
 * projection existed) is asked directly.
 */
export async function closureCheck(deps: { workflows: ChangeWorkflows; evidence: EvidenceStore; verdicts: ClosureVerdictStore }, number: string) {
  checkTicketNumber(number);
  const key = ticketKey('servicenow', number);
  const [published, { rows, chain }] = await Promise.all([deps.verdicts.latest('servicenow', number), deps.evidence.listVerified(key)]);
  let view: ClosureView;
  const reasons: string[] = [];
  if (published) {
    view = published.view;
    if (published.newestDelivery > published.evaluatedVersion) {
      reasons.push(`the ticket's latest update (version ${published.newestDelivery}) is not evaluated yet`);
    }
  } else {
    const state = await deps.workflows.status('servicenow', number);
    if (!state) throw new AppError(404, 'NOT_FOUND', `changegate has not received change ${number}`);
    view = closureView(state);
  }
  reasons.unshift(...view.reasons);
  const proven = new Set(rows.filter((r) => r.verified).map((r) => r.stepId));
  for (const step of view.steps) {
    if (step.status === 'verified' && !proven.has(step.stepId)) reasons.push(`${step.stepId} has no verified evidence row`);
  }
  if (!chain.valid) reasons.push(`evidence chain is broken at row ${chain.brokenAt?.seq}: ${chain.brokenAt?.reason}`);
  return {
    ticket: number,
    allowed: reasons.length === 0,
    reasons,
    ticketState: view.ticketState,
    steps: view.steps,
    evidence: { rows: rows.length, chainValid: chain.valid },
  };
}

export async function evidenceBundle(deps: { evidence: EvidenceStore }, number: string) {
  const key = ticketKey('servicenow', checkTicketNumber(number));
  const { rows, chain } = await deps.evidence.listVerified(key);
  if (rows.length === 0) throw new AppError(404, 'NOT_FOUND', `no evidence recorded for ${number}`);
  return { ticket: number, chain, rows };
}

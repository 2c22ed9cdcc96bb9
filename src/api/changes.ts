import { type ClosureView, closureView } from '../change/closure';
import { ticketKey } from '../change/ticket';
import type { ClosureVerdictStore } from '../closure/verdict-store';
import { evidenceBundleOf } from '../evidence/evidence-bundle';
import { exportEvidence } from '../evidence/evidence-export';
import type { EvidenceSigner } from '../evidence/evidence-signing';
import type { EvidenceStore } from '../evidence/evidence-store';
import { AppError } from '../errors';
import type { TicketSource } from '../itsm/source';
import type { ChangeWorkflows } from '../temporal/temporal-client';
import { closureRules } from '../../workflows/kinds/registry';

export function checkTicketKey(source: TicketSource, key: string): string {
  if (!source.keyPattern.test(key)) {
    throw new AppError(400, 'VALIDATION_FAILED', 'invalid ticket number', [{ path: 'path.number', message: `must look like ${source.keyExample}` }]);
  }
  return key;
}

/**
 * The closure gate as an endpoint: the workflow's step states, cross-checked against the evidence chain — a step
 * counts only if its verified evidence row exists and the chain is intact. The step states come from the view the
 * workflow last published (closure_verdicts), not from a query that would replay it; a delivery the workflow has not
 * yet evaluated keeps the answer "not allowed". A ticket that has never published (a workflow started before the
 * projection existed) is asked directly.
 */
export async function closureCheck(
  deps: { workflows: ChangeWorkflows; evidence: EvidenceStore; verdicts: ClosureVerdictStore },
  source: TicketSource,
  key: string,
) {
  checkTicketKey(source, key);
  // The view first, the evidence after: a step's evidence row is written before the workflow hears the step ended,
  // so every step a view shows verified has its row in any read that starts after the view was read. Read at once,
  // the rows could be those of a moment before a view read just after, and a verified step seem to lack its row.
  const published = await deps.verdicts.latest(source.name, key);
  let view: ClosureView;
  const reasons: string[] = [];
  if (published) {
    view = published.view;
    if (published.newestDelivery > published.evaluatedVersion) {
      reasons.push(`the ticket's latest update (version ${published.newestDelivery}) is not evaluated yet`);
    }
  } else {
    const state = await deps.workflows.status(source.name, key);
    if (!state) throw new AppError(404, 'NOT_FOUND', `changegate has not received change ${key}`);
    view = closureView(state, closureRules);
  }
  const { rows, chain } = await deps.evidence.listVerified(ticketKey(source.name, key));
  reasons.unshift(...view.reasons);
  const proven = new Set(rows.filter((r) => r.verified).map((r) => r.stepId));
  for (const step of view.steps) {
    if (step.status === 'verified' && !proven.has(step.stepId)) reasons.push(`${step.stepId} has no verified evidence row`);
  }
  if (!chain.valid) reasons.push(`evidence chain is broken at row ${chain.brokenAt?.seq}: ${chain.brokenAt?.reason}`);
  return {
    ticket: key,
    allowed: reasons.length === 0,
    reasons,
    ticketState: view.ticketState,
    phase: view.phase,
    steps: view.steps,
    evidence: { rows: rows.length, chainValid: chain.valid },
  };
}

export async function evidenceBundle(deps: { evidence: EvidenceStore }, source: TicketSource, key: string) {
  const bundle = await evidenceBundleOf(deps.evidence, source.name, checkTicketKey(source, key));
  if (!bundle) throw new AppError(404, 'NOT_FOUND', `no evidence recorded for ${key}`);
  return bundle;
}

/** The ticket's evidence as a signed, self-contained bundle an auditor verifies offline (`changegate verify-evidence`). */
export async function evidenceExport(deps: { evidence: EvidenceStore; evidenceSigner?: EvidenceSigner }, source: TicketSource, key: string) {
  checkTicketKey(source, key);
  const signer = signingKey(deps.evidenceSigner);
  const bundle = await exportEvidence(deps.evidence, signer, source.name, key);
  if (!bundle) throw new AppError(404, 'NOT_FOUND', `no evidence recorded for ${key}`);
  return bundle;
}

/** The public half of the signing key, with its id: an auditor's trust anchor for exported bundles. */
export function evidencePublicKey(deps: { evidenceSigner?: EvidenceSigner }) {
  const signer = signingKey(deps.evidenceSigner);
  return { keyId: signer.keyId, alg: 'Ed25519', jwk: signer.publicKeyJwk, pem: signer.publicKeyPem };
}

function signingKey(signer: EvidenceSigner | undefined): EvidenceSigner {
  if (!signer) throw new AppError(503, 'UNAVAILABLE', 'evidence export needs a signing key: set CHANGEGATE_EVIDENCE_SIGNING_KEY');
  return signer;
}

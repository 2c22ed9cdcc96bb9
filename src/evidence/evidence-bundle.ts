import type { SourceName } from '../change/ticket';
import { ticketKey } from '../change/ticket';
import type { EvidenceStore } from './evidence-store';

/**
 * A ticket's evidence bundle: every evidence row and the result of checking its hash chain, as auditors export it
 * (GET /api/changes/:source/:key/evidence) and as it is attached to the ticket once cleanup is verified. Null when
 * nothing was recorded.
 */
export async function evidenceBundleOf(evidence: EvidenceStore, source: SourceName, key: string) {
  const { rows, chain } = await evidence.listVerified(ticketKey(source, key));
  if (rows.length === 0) return null;
  return { ticket: key, chain, rows };
}

export type EvidenceBundle = NonNullable<Awaited<ReturnType<typeof evidenceBundleOf>>>;

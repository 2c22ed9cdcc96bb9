import { hostname } from 'node:os';
import type { EvidenceStore } from '../../evidence/evidence-store';
import type { JiraRuntimeOptions } from './jira-runtime';

/**
 * The close guard's decision as evidence: a ticket that reached a closing status without the gate passing, sent back,
 * with the reasons, in the ticket's own chain (one row per issue version: a repeated delivery finds it there).
 */
export function closeRevertRecorder(evidence: EvidenceStore): NonNullable<JiraRuntimeOptions['recordRevert']> {
  return async (ticketKey, revert) => {
    const now = new Date().toISOString();
    await evidence.append({
      ticketKey,
      stepId: `close-guard:${revert.version}`,
      outcome: 'close-reverted',
      actionKind: 'close-guard',
      system: '*',
      identity: {},
      desiredState: { status: revert.revertedTo },
      observedState: { status: revert.status, reasons: revert.reasons },
      // The gateway's own decision on the ticket, not a read-back of a target.
      verified: false,
      verification: {},
      actor: `changegate-api@${hostname()}`,
      eventReceivedAt: now,
      startedAt: now,
      verifiedAt: null,
    });
  };
}
